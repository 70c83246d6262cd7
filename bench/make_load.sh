#!/usr/bin/env bash
# Records the benchmark load capture once: ~1000 SIPp calls with two-way G.711 RTP on loopback
# (uac_pcap plays /usr/share/sip-tester/g711a.pcap, uas echoes it with -rtp_echo), recorded by tcpdump.
# All traffic stays on 127.0.0.1. Output: bench/data/load.pcap (not committed; ~520k packets).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/data/load.pcap}
calls=${CALLS:-1050}
rate=${RATE:-25}
sip_uas=5190 sip_uac=5191 media_uas=16000 media_uac=17000
[ -s "$out" ] && { echo "load capture exists: $out"; exit 0; }
mkdir -p "$(dirname "$out")"
work=$(mktemp -d)
trap 'kill $uas $dump 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
ln -s /usr/share/sip-tester pcap   # uac_pcap looks for pcap/g711a.pcap
tcpdump -i lo -B 16384 -U -w "$out.part" \
  "udp and (port $sip_uas or port $sip_uac or portrange $media_uas-$((media_uac + 9999)))" 2>/dev/null &
dump=$!
sipp -sn uas -rtp_echo -i 127.0.0.1 -p $sip_uas -mp $media_uas -nostdin >/dev/null 2>&1 &
uas=$!
sleep 1
timeout 600 sipp -sn uac_pcap 127.0.0.1:$sip_uas -i 127.0.0.1 -p $sip_uac -mp $media_uac \
  -m "$calls" -r "$rate" -l 400 -nostdin >/dev/null 2>&1 || echo "warning: sipp uac exited $?"
sleep 2
kill -INT $dump; wait $dump || true
kill $uas 2>/dev/null || true
mv "$out.part" "$out"
echo "wrote $out"
