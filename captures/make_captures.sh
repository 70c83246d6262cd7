#!/usr/bin/env bash
# Regenerate the sipwatch test captures (captures/*.pcap).
#
# Every capture is a SIPp UAC talking to a SIPp UAS over loopback only
# (127.0.0.1 or ::1), recorded by tcpdump on "lo" (any_interface.pcap uses
# "-i any") with a capture filter limited to the ports of that capture.
# Scenarios live in captures/scenarios/; see captures/README.md.
#
# Usage: sudo bash captures/make_captures.sh [NAME...]   (needs root for
#        tcpdump and for SIPp's raw socket when it plays RTP from a pcap;
#        with NAMEs, e.g. "blocked_608 identity_c_608", only those captures)
# Needs: sipp (with pcap play), tcpdump, coreutils timeout, awk.
#
# Port plan for capture number N (1..27): UAS SIP port 5060+N, UAC SIP port
# 5160+N, UAS media 16000+10N (+2 for SIPp's echo "video" port), UAC media
# 17000+10N (+2 after the re-INVITE of reinvite_port_change).
# route_advance_503 (N=15) also uses the ports of N=16 for its second UAS,
# so no capture has N=16.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCN="$HERE/scenarios"
RTP_PCAP=/usr/share/sip-tester/g711a.pcap   # hard-coded in uac_call.xml too
V4=127.0.0.1
V6=::1
NAT_IP=192.168.1.23      # TEXT only (Via/Contact/SDP); never a destination

die() { echo "make_captures: ERROR: $*" >&2; exit 1; }
ONLY=("$@")
want() {   # NAME: is this capture to be made in this run?
  [[ ${#ONLY[@]} -eq 0 ]] && return 0
  local name
  for name in "${ONLY[@]}"; do [[ $name == "$1" ]] && return 0; done
  return 1
}
log() { printf '%s  %s\n' "$(date +%T)" "$*"; }

[[ $EUID -eq 0 ]] || die "run as root (tcpdump on lo, SIPp raw socket for RTP play)"
for tool in sipp tcpdump timeout awk; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done
[[ -r $RTP_PCAP ]] || die "missing $RTP_PCAP (Debian package sip-tester)"

WORK="$(mktemp -d /tmp/sipwatch-captures.XXXXXX)"
BG_PIDS=()            # every background process this script started
KEEP_WORK=1           # keep logs for debugging unless we finish cleanly

# bg_done PID: a background process has been waited for; forget it so the
# cleanup never signals a recycled PID.
bg_done() {
  local q keep=()
  for q in "${BG_PIDS[@]}"; do [[ $q == "$1" ]] || keep+=("$q"); done
  BG_PIDS=("${keep[@]}")
}

cleanup() {
  local pid
  for pid in "${BG_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -INT "$pid" 2>/dev/null || true
      sleep 0.2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  if [[ $KEEP_WORK -eq 1 ]]; then
    echo "make_captures: logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
cd "$WORK"   # SIPp writes its log files into the current directory

# ---------------------------------------------------------------- helpers --

# wait_listen PROTO PORT: until a socket is bound on PORT (udp) or listening
# on it (tcp), IPv4 or IPv6, reading /proc/net directly (no ss/netstat).
port_in_use() {
  local proto=$1 port=$2 hex
  hex=$(printf '%04X' "$port")
  awk -v p=":$hex" -v tcp="$([[ $proto == tcp ]] && echo 1 || echo 0)" '
    NR > 1 && substr($2, length($2) - 4) == p && (!tcp || $4 == "0A") { f = 1 }
    END { exit !f }' "/proc/net/$proto" "/proc/net/${proto}6" 2>/dev/null
}
wait_listen() {
  local i
  for i in $(seq 100); do
    port_in_use "$1" "$2" && return 0
    sleep 0.05
  done
  die "nothing is listening on $1 port $2"
}

# tcpdump_start FILE IFACE FILTER: start tcpdump in the background (pid in
# TD_PID) and wait until it is actually capturing.
TD_PID=''
tcpdump_start() {
  local file=$1 iface=$2 filter=$3 i
  rm -f "$file"
  tcpdump -i "$iface" -n -s 0 -U --immediate-mode -Z root -w "$file" "$filter" 2>"$file.log" &
  TD_PID=$!
  BG_PIDS+=("$TD_PID")
  for i in $(seq 100); do
    grep -q 'listening on' "$file.log" && return 0
    kill -0 "$TD_PID" 2>/dev/null || break
    sleep 0.05
  done
  cat "$file.log" >&2
  die "tcpdump did not start ($file)"
}
tcpdump_stop() {   # PID: SIGINT makes tcpdump flush and close the file
  kill -INT "$1"
  wait "$1" || true
  bg_done "$1"
}

# cap_start NAME IFACE FILTER: record $WORK/NAME.pcap.
CAP_NAME='' CAP_PID=''
cap_start() {
  CAP_NAME=$1
  tcpdump_start "$WORK/$CAP_NAME.pcap" "$2" "$3"
  CAP_PID=$TD_PID
}

# cap_stop: stop tcpdump cleanly (SIGINT flushes the file), check that it
# recorded something and move the result into captures/.
cap_stop() {
  sleep 0.5   # let the last packets (and any late retransmission) arrive
  tcpdump_stop "$CAP_PID"
  local n
  n=$(tcpdump -n -r "$WORK/$CAP_NAME.pcap" 2>/dev/null | wc -l)
  [[ $n -gt 0 ]] || die "$CAP_NAME: capture is empty"
  mv -f "$WORK/$CAP_NAME.pcap" "$HERE/$CAP_NAME.pcap"
  log "wrote captures/$CAP_NAME.pcap ($n packets)"
}

# SIPp options shared by every run: no keyboard, log unexpected messages,
# and an outer coreutils timeout in case SIPp's own -timeout misbehaves
# (timeout forwards SIGINT/SIGTERM to SIPp).
SIPP=(timeout -k 5 90 sipp -nostdin -trace_err)
sipp_failed() {   # LABEL RC
  echo "---- $1 (exit $2): last screen / errors ----" >&2
  tail -n 40 "$WORK/$1.out" >&2 || true
  cat "$WORK/$1.errors.log" >&2 2>/dev/null || true
  die "SIPp $1 failed (exit $2)"
}

# uas_start LABEL PROTO PORT sipp-args...: UAS in the background.
UAS_PIDS=() UAS_LABELS=()
uas_start() {
  local label=$1 proto=$2 port=$3; shift 3
  port_in_use "$proto" "$port" && die "$proto port $port is already in use"
  "${SIPP[@]}" "$@" -error_file "$WORK/$label.errors.log" >"$WORK/$label.out" 2>&1 &
  BG_PIDS+=("$!"); UAS_PIDS+=("$!"); UAS_LABELS+=("$label")
  wait_listen "$proto" "$port"
}
# uas_wait: wait for every UAS started since the last uas_wait; each must
# exit 0 (its call followed the scenario).
uas_wait() {
  local i rc
  for i in "${!UAS_PIDS[@]}"; do
    rc=0; wait "${UAS_PIDS[$i]}" || rc=$?
    bg_done "${UAS_PIDS[$i]}"
    [[ $rc -eq 0 ]] || sipp_failed "${UAS_LABELS[$i]}" "$rc"
  done
  UAS_PIDS=() UAS_LABELS=()
}
# uac LABEL sipp-args...: UAC in the foreground; must exit 0.
uac() {
  local label=$1 rc=0; shift
  "${SIPP[@]}" "$@" -error_file "$WORK/$label.errors.log" >"$WORK/$label.out" 2>&1 || rc=$?
  [[ $rc -eq 0 ]] || sipp_failed "$label" "$rc"
}

sip() { echo $((5060 + $1)); }       # UAS SIP port of capture N
csip() { echo $((5160 + $1)); }      # UAC SIP port
smedia() { echo $((16000 + 10 * $1)); }   # UAS media port (+2 echo video)
cmedia() { echo $((17000 + 10 * $1)); }   # UAC media port
# UDP filter: the UAS SIP port plus both media ranges of capture N.
ufilter() {
  echo "udp port $(sip "$1") or udp portrange $(smedia "$1")-$(($(smedia "$1") + 3))" \
       "or udp portrange $(cmedia "$1")-$(($(cmedia "$1") + 3))"
}

# Common arguments.
UAS_ANSWER=(-sf "$SCN/uas_answer.xml" -m 1 -timeout 60s)
UAS_REPLY=(-sf "$SCN/uas_reply.xml" -m 1 -timeout 30s)
UAC_CALL=(-sf "$SCN/uac_call.xml" -m 1 -timeout 60s -timeout_error)
UAC_FAIL=(-sf "$SCN/uac_fail.xml" -m 1 -timeout 30s -timeout_error)
v4uas() { echo -i $V4 -p "$(sip "$1")" -mi $V4 -mp "$(smedia "$1")"; }
v4uac() { echo -i $V4 -p "$(csip "$1")" -mi $V4 -mp "$(cmedia "$1")" $V4:"$(sip "$1")"; }
V4KEYS=(-key sig_host $V4 -key sdp_ip $V4)

# rejected NAME N CODE [extra UAS args]: INVITE answered by a final error.
rejected() {
  local name=$1 n=$2 code=$3; shift 3
  want "$name" || return 0
  log "$name: INVITE -> $code"
  cap_start "$name" lo "$(ufilter "$n")"
  # shellcheck disable=SC2046
  uas_start "$name.uas" udp "$(sip "$n")" "${UAS_REPLY[@]}" $(v4uas "$n") -set code "$code" "$@"
  # shellcheck disable=SC2046
  uac "$name.uac" "${UAC_FAIL[@]}" $(v4uac "$n")
  uas_wait
  cap_stop
}

# -------------------------------------------------------------- captures --
# shellcheck disable=SC2046   # $(v4uas N) / $(v4uac N) split on purpose

# 1. Answered call with RTP both ways (~3 s): the UAC plays g711a.pcap from
#    its SDP port, the UAS echoes it back from its SDP port.
if want answered_rtp; then
n=1; log "answered_rtp: answered call, RTP both ways"
cap_start answered_rtp lo "$(ufilter $n)"
uas_start answered_rtp.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -rtp_echo
uac answered_rtp.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -d 3000
uas_wait; cap_stop
fi

# 2-5, 17, 18. Rejections.
rejected busy_486 2 486
rejected declined_603 3 603 -set ring 1 -d 2000
rejected unavailable_503 4 503
rejected not_found_404 5 404
rejected blocked_607 17 607
rejected blocked_608 18 608

# 6. Caller cancels while ringing.
if want cancel_487; then
n=6; log "cancel_487: 180, CANCEL, 200, 487, ACK"
cap_start cancel_487 lo "$(ufilter $n)"
uas_start cancel_487.uas udp "$(sip $n)" -sf "$SCN/uas_cancel.xml" -m 1 -timeout 30s $(v4uas $n)
uac cancel_487.uac -sf "$SCN/uac_cancel.xml" -m 1 -timeout 30s -timeout_error $(v4uac $n) -d 2000
uas_wait; cap_stop
fi

# 7. Nobody listens: INVITE retransmitted on Timer A until Timer B (32 s);
#    then, from the same port, one unanswered OPTIONS probe at ~33 s so the
#    capture spans more than 32 s (see uac_noanswer.xml).
if want timeout_no_answer; then
n=7; log "timeout_no_answer: unanswered INVITE (takes ~34 s)"
port_in_use udp "$(sip $n)" && die "udp port $(sip $n) must be free for timeout_no_answer"
cap_start timeout_no_answer lo "$(ufilter $n)"
uac timeout_no_answer.uac -sf "$SCN/uac_noanswer.xml" -m 1 -timeout 50s -timeout_error \
  -max_invite_retrans 6 $(v4uac $n)
sleep 1
uac timeout_no_answer.probe -sf "$SCN/uac_noanswer.xml" -m 1 -timeout 10s -timeout_error \
  -set probe 1 $(v4uac $n)
cap_stop
fi

# 8. REGISTER challenged with 401, then accepted (digest verified by the UAS).
if want register_401_200; then
n=8; log "register_401_200: REGISTER, 401, REGISTER+Authorization, 200"
cap_start register_401_200 lo "$(ufilter $n)"
uas_start register_401_200.uas udp "$(sip $n)" -sf "$SCN/uas_register.xml" -m 1 -timeout 30s \
  $(v4uas $n) -key auth_user sipp -key auth_pass secret
uac register_401_200.uac -sf "$SCN/uac_register.xml" -m 1 -timeout 30s -timeout_error \
  $(v4uac $n) -au sipp -ap secret
uas_wait; cap_stop
fi

# 9. Answered call over TCP. The UAS runs without -m and leaves on its
#    -timeout: SIPp fails a TCP call whose connection the peer closes first.
if want tcp_call; then
n=9; log "tcp_call: answered call over TCP (takes ~6 s)"
cap_start tcp_call lo "tcp port $(sip $n)"
uas_start tcp_call.uas tcp "$(sip $n)" -sf "$SCN/uas_answer.xml" -t t1 -timeout 6s $(v4uas $n)
uac tcp_call.uac "${UAC_CALL[@]}" -t t1 $(v4uac $n) "${V4KEYS[@]}" -set linger 1 -d 1000
uas_wait; cap_stop
fi

# 10. Answered call over UDP on IPv6 loopback.
if want ipv6_call; then
n=10; log "ipv6_call: answered call on [::1]"
cap_start ipv6_call lo "$(ufilter $n)"
uas_start ipv6_call.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" -i $V6 -p "$(sip $n)" -mi $V6 -mp "$(smedia $n)"
uac ipv6_call.uac "${UAC_CALL[@]}" -i $V6 -p "$(csip $n)" -mi $V6 -mp "$(cmedia $n)" \
  "[$V6]:$(sip $n)" -key sig_host "[$V6]" -key sdp_ip $V6 -d 1000
uas_wait; cap_stop
fi

# 11. Answered call (with 2 s of RTP echo) recorded on the "any" pseudo-
#     interface: Linux cooked capture (SLL2 with tcpdump 4.99 / libpcap 1.10).
if want any_interface; then
n=11; log "any_interface: answered call + RTP, tcpdump -i any"
cap_start any_interface any "$(ufilter $n)"
uas_start any_interface.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -rtp_echo
uac any_interface.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -d 2000
uas_wait; cap_stop
fi

# 12. INVITE challenged with 407, re-sent with Proxy-Authorization, answered.
if want auth_invite_407; then
n=12; log "auth_invite_407: 407, ACK, INVITE+Proxy-Authorization, answered"
cap_start auth_invite_407 lo "$(ufilter $n)"
uas_start auth_invite_407.uas udp "$(sip $n)" -sf "$SCN/uas_auth_invite.xml" -m 1 -timeout 30s $(v4uas $n)
uac auth_invite_407.uac -sf "$SCN/uac_auth_invite.xml" -m 1 -timeout 30s -timeout_error \
  $(v4uac $n) -au sipp -ap secret -auth_uri "sip:service@$V4:$(sip $n)" -d 1000
uas_wait; cap_stop
fi

# 13. NAT: the caller writes a private address in Via, From, Contact and SDP
#     while its packets come from 127.0.0.1. No RTP at all. A second tcpdump
#     proves that nothing was sent towards the private address.
if want nat_private_sdp; then
n=13; log "nat_private_sdp: private $NAT_IP in Via/Contact/SDP, no RTP"
tcpdump_start "$WORK/nat_guard.pcap" any "dst host $NAT_IP"
GUARD_PID=$TD_PID
cap_start nat_private_sdp lo "$(ufilter $n)"
uas_start nat_private_sdp.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n)
uac nat_private_sdp.uac "${UAC_CALL[@]}" $(v4uac $n) -key sig_host $NAT_IP -key sdp_ip $NAT_IP -d 1000
uas_wait; cap_stop
tcpdump_stop "$GUARD_PID"
[[ $(tcpdump -n -r "$WORK/nat_guard.pcap" 2>/dev/null | wc -l) -eq 0 ]] \
  || die "nat_private_sdp: packets were sent to $NAT_IP"
fi

# 14. 200 OK never ACKed: the UAS retransmits it (T1 doubling, capped at
#     T2 = 4 s; 10 retransmissions, the last 31.5 s after the first 200)
#     and sends BYE at the next timer expiry, 35.5 s after the first 200.
if want missing_ack; then
n=14; log "missing_ack: 200 OK retransmitted, no ACK, BYE at ~36 s (takes ~37 s)"
cap_start missing_ack lo "$(ufilter $n)"
uas_start missing_ack.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -max_retrans 10 -max_non_invite_retrans 10
uac missing_ack.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set no_ack 1
uas_wait; cap_stop
fi

# 15. Route advance: 503 from the first UAS (port 5075), then at once a new
#     INVITE (new Call-ID, same users, same UAC port) to a second UAS (5076).
if want route_advance_503; then
n=15; log "route_advance_503: 503 from $(sip $n), new INVITE to $(sip 16), answered"
cap_start route_advance_503 lo "$(ufilter $n) or udp port $(sip 16)"
uas_start route_advance_503.uas1 udp "$(sip $n)" "${UAS_REPLY[@]}" $(v4uas $n) -set code 503
uas_start route_advance_503.uas2 udp "$(sip 16)" "${UAS_ANSWER[@]}" -i $V4 -p "$(sip 16)" \
  -mi $V4 -mp "$(smedia 16)"
uac route_advance_503.uac1 "${UAC_FAIL[@]}" $(v4uac $n)
uac route_advance_503.uac2 "${UAC_CALL[@]}" -i $V4 -p "$(csip $n)" -mi $V4 -mp "$(cmedia $n)" \
  $V4:"$(sip 16)" "${V4KEYS[@]}" -d 1000
uas_wait; cap_stop
fi

# 19. One-way audio: the UAC plays RTP for ~3 s, the UAS sends none.
if want one_way_audio; then
n=19; log "one_way_audio: RTP caller -> callee only"
cap_start one_way_audio lo "$(ufilter $n)"
uas_start one_way_audio.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n)
uac one_way_audio.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -d 3000
uas_wait; cap_stop
fi

# 20. Short call: the callee hangs up after ~1 s.
if want short_call; then
n=20; log "short_call: callee sends BYE after 1 s"
cap_start short_call lo "$(ufilter $n)"
uas_start short_call.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -set callee_bye 1 -d 1000
uac short_call.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set callee_bye 1
uas_wait; cap_stop
fi

# g711a.pcap holds 236 PCMA packets 30 ms apart (about 7.1 s). SIPp stops
# playing it when the call ends, so a -d below 7.1 s cuts it. The captures
# below use a longer -d where the RTP has to end first.

# 21. RTP timeout: RTP both ways (all of g711a.pcap, echoed, ~7 s), then
#     ~8 s of silence in both directions while the dialog stays up, then BYE.
if want rtp_timeout; then
n=21; log "rtp_timeout: RTP stops both ways, BYE ~8 s later (takes ~16 s)"
cap_start rtp_timeout lo "$(ufilter $n)"
uas_start rtp_timeout.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -rtp_echo
uac rtp_timeout.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -d 15000
uas_wait; cap_stop
fi

# 22. Early media: 183 Session Progress with SDP, the callee plays RTP from
#     the 183 on (1.5 s before its 200 OK); the caller plays after the ACK.
if want early_media_183; then
n=22; log "early_media_183: 183 with SDP and RTP before the 200 OK"
cap_start early_media_183 lo "$(ufilter $n)"
uas_start early_media_183.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -set early_media 1
uac early_media_183.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -d 5000
uas_wait; cap_stop
fi

# 23. re-INVITE moving the caller's media from 17230 to 17232: RTP (all of
#     g711a.pcap, echoed) on the old port, re-INVITE, 200, ACK, 3 s of RTP
#     on the new port, BYE.
if want reinvite_port_change; then
n=23; log "reinvite_port_change: re-INVITE moves the caller's RTP port (takes ~11 s)"
cap_start reinvite_port_change lo "$(ufilter $n)"
uas_start reinvite_port_change.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -rtp_echo
uac reinvite_port_change.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -set reinvite 1 -d 7500
uas_wait; cap_stop
fi

# 24. Hold and resume: RTP (all of g711a.pcap, echoed), re-INVITE a=sendonly
#     / 200 a=recvonly, 3 s without RTP, re-INVITE a=sendrecv / 200
#     a=sendrecv, 3 s of RTP, BYE. -d 7500 lets the first play end before
#     the hold: SIPp would go on playing (and the UAS echoing) through it.
if want hold; then
n=24; log "hold: re-INVITE sendonly, 3 s on hold, re-INVITE sendrecv (takes ~14 s)"
cap_start hold lo "$(ufilter $n)"
uas_start hold.uas udp "$(sip $n)" "${UAS_ANSWER[@]}" $(v4uas $n) -rtp_echo
uac hold.uac "${UAC_CALL[@]}" $(v4uac $n) "${V4KEYS[@]}" -set rtp 1 -set hold 1 -d 7500
uas_wait; cap_stop
fi

# 25. STIR/SHAKEN: an INVITE signed with attestation C (gateway), refused
#     by an analytics service with 608. The PASSporT is built now (iat = the
#     capture's time); its signature segment is 64 random bytes, since
#     nothing here verifies signatures (sipwatch reads, never verifies).
if want identity_c_608; then
n=25; log "identity_c_608: INVITE with Identity (attest C) -> 608"
IDENTITY=$(python3 - <<'PY'
import base64, json, os, time, uuid
b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = {"alg": "ES256", "ppt": "shaken", "typ": "passport", "x5u": "https://cert.example.org/sipwatch-test.pem"}
claims = {"attest": "C", "dest": {"tn": ["12025550199"]}, "iat": int(time.time()),
          "orig": {"tn": "12025550123"}, "origid": str(uuid.uuid4())}
token = ".".join((b64(json.dumps(header, separators=(",", ":")).encode()),
                  b64(json.dumps(claims, separators=(",", ":")).encode()), b64(os.urandom(64))))
print(f"{token};info=<https://cert.example.org/sipwatch-test.pem>;alg=ES256;ppt=shaken")
PY
)
cap_start identity_c_608 lo "$(ufilter $n)"
uas_start identity_c_608.uas udp "$(sip $n)" "${UAS_REPLY[@]}" $(v4uas $n) -set code 608
uac identity_c_608.uac -sf "$SCN/uac_signed.xml" -m 1 -timeout 30s -timeout_error $(v4uac $n) \
  -s 12025550199 -key caller_tn 12025550123 -key identity "$IDENTITY"
uas_wait; cap_stop
fi

# 26. STIR/SHAKEN required: an INVITE without Identity answered 428.
rejected identity_absent_428 26 428

# 27. Capacity: a UAS that takes 4 concurrent calls (uas_limit.xml). First
#     4 calls at 1 call/s (1.5 s each, all answered), then a burst of 20
#     calls at 20 calls/s (1.5 s each): 4 answered, 6 refused with 486, 10
#     with 503. Calls answered for under 2 s are not judged for missing RTP.
if want capacity_burst; then
n=27; log "capacity_burst: 4 quiet calls, then 20 calls in 1 s against a 4-call limit (takes ~12 s)"
cap_start capacity_burst lo "$(ufilter $n)"
uas_start capacity_burst.uas udp "$(sip $n)" -sf "$SCN/uas_limit.xml" -m 24 -timeout 60s $(v4uas $n)
uac capacity_burst.quiet -sf "$SCN/uac_load.xml" -m 4 -r 1 -d 1500 -timeout 30s -timeout_error $(v4uac $n)
sleep 1
uac capacity_burst.burst -sf "$SCN/uac_load.xml" -m 20 -r 20 -d 1500 -timeout 30s -timeout_error $(v4uac $n)
uas_wait; cap_stop
fi

KEEP_WORK=0
log "all captures written to $HERE"
