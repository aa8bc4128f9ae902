#!/usr/bin/env bash
# Captures the BGP messages BIRD 2, FRR and GoBGP send, into the hex fixtures beside this script.
#
# Two runs, each in two network namespaces of its own joined by one veth (192.0.2.0/24 and
# 2001:db8::/64): FRR (AS 65001) peers with BIRD (AS 65002), then with GoBGP (AS 65003), over
# an IPv4 session (IPv4 unicast) and an IPv6 session (IPv6 unicast). Every daemon announces a
# prefix per family with a community and a large community; then each side asks for a route
# refresh and shuts a session down (Cease NOTIFICATION). tcpdump records port 179 and the TCP
# streams are cut into BGP messages, one hex line each, in `<sender>-to-<receiver>-<ipv4|ipv6>.hex`.
#
# Needs root, iproute2, tcpdump, bird2, frr, gobgpd, python3. Not part of the test suite: the
# decode tests (speaker/tests/bgp_captures.rs) read the committed fixtures.
# Namespaces, links and run directories carry a run-unique prefix and are removed, and every
# process started here is stopped by its pid, on success, failure and interrupt.
set -euo pipefail

OUT=$(cd "$(dirname "$0")" && pwd)
RUN=flbcap$(printf '%04x' $((RANDOM % 65536)))
WORK=$(mktemp -d "/tmp/$RUN.XXXX")
chmod 755 "$WORK"
# FRR daemons run as user frr and write their pid files here.
chown frr:frr "$WORK"
NS_FRR=$RUN-frr
NS_PEER=$RUN-peer
PIDS=()

log() { echo "[$RUN] $*" >&2; }

stop_processes() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    PIDS=()
}

remove_namespaces() {
    ip netns del "$NS_FRR" 2>/dev/null || true
    ip netns del "$NS_PEER" 2>/dev/null || true
    rm -rf "/var/run/frr/$NS_FRR"
}

cleanup() {
    stop_processes
    remove_namespaces
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Adds the pid in FILE (written by a daemonizing process) to the processes to stop.
track_pidfile() {
    local file=$1
    for _ in $(seq 100); do
        if [[ -s $file ]]; then PIDS+=("$(cat "$file")"); return; fi
        sleep 0.1
    done
    log "no pid file $file"; return 1
}

setup_namespaces() {
    ip netns add "$NS_FRR"
    ip netns add "$NS_PEER"
    ip link add "${RUN}f" netns "$NS_FRR" type veth peer name "${RUN}p" netns "$NS_PEER"
    ip -n "$NS_FRR" addr add 192.0.2.1/24 dev "${RUN}f"
    ip -n "$NS_FRR" addr add 2001:db8::1/64 dev "${RUN}f" nodad
    ip -n "$NS_PEER" addr add 192.0.2.2/24 dev "${RUN}p"
    ip -n "$NS_PEER" addr add 2001:db8::2/64 dev "${RUN}p" nodad
    for ns in "$NS_FRR" "$NS_PEER"; do
        ip -n "$ns" link set lo up
    done
    ip -n "$NS_FRR" link set "${RUN}f" up
    ip -n "$NS_PEER" link set "${RUN}p" up
}

start_tcpdump() {
    ip netns exec "$NS_FRR" tcpdump -i "${RUN}f" -U -s 0 -w "$WORK/$1.pcap" 'tcp port 179' \
        >/dev/null 2>&1 &
    PIDS+=("$!")
    sleep 1
}

start_frr() {
    local peer_as=$1
    mkdir -p "/var/run/frr/$NS_FRR"
    chown frr:frr "/var/run/frr/$NS_FRR"
    cat >"$WORK/frr.conf" <<EOF
frr defaults traditional
hostname capture-frr
router bgp 65001
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 no bgp default ipv4-unicast
 neighbor 192.0.2.2 remote-as $peer_as
 neighbor 192.0.2.2 timers connect 2
 neighbor 2001:db8::2 remote-as $peer_as
 neighbor 2001:db8::2 timers connect 2
 address-family ipv4 unicast
  network 198.51.100.0/24 route-map tag
  neighbor 192.0.2.2 activate
 exit-address-family
 address-family ipv6 unicast
  network 2001:db8:f::/48 route-map tag
  neighbor 2001:db8::2 activate
 exit-address-family
route-map tag permit 10
 set community 65001:100 65001:101
 set large-community 65001:1:2
EOF
    : >"$WORK/zebra.conf"
    chmod 644 "$WORK"/*.conf
    ip netns exec "$NS_FRR" /usr/lib/frr/zebra -d -N "$NS_FRR" -A 127.0.0.1 \
        -f "$WORK/zebra.conf" -i "$WORK/zebra.pid"
    track_pidfile "$WORK/zebra.pid"
    ip netns exec "$NS_FRR" /usr/lib/frr/bgpd -d -N "$NS_FRR" -A 127.0.0.1 \
        -f "$WORK/frr.conf" -i "$WORK/bgpd.pid"
    track_pidfile "$WORK/bgpd.pid"
}

# vtysh warns about the missing per-namespace vtysh.conf on every call; that is expected.
frr() { ip netns exec "$NS_FRR" vtysh -N "$NS_FRR" "$@" 2> >(grep -v vtysh.conf >&2); }

wait_established() {
    for _ in $(seq 60); do
        local up
        up=$(frr -c 'show bgp neighbors json' | python3 -c \
            'import json,sys; print(sum(n.get("bgpState")=="Established" for n in json.load(sys.stdin).values()))')
        if [[ $up == 2 ]]; then sleep 3; return; fi
        sleep 1
    done
    log "sessions did not come up"; frr -c 'show bgp summary'; return 1
}

start_bird() {
    cat >"$WORK/bird.conf" <<EOF
router id 192.0.2.2;
protocol device {}
protocol static s4 { ipv4; route 203.0.113.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:b::/48 blackhole; }
filter add_communities {
    bgp_community.add((65002, 200));
    bgp_large_community.add((65002, 3, 4));
    accept;
}
protocol bgp frr4 {
    local 192.0.2.2 as 65002;
    neighbor 192.0.2.1 as 65001;
    connect retry time 2; error wait time 1, 5;
    ipv4 { import all; export filter add_communities; };
}
protocol bgp frr6 {
    local 2001:db8::2 as 65002;
    neighbor 2001:db8::1 as 65001;
    connect retry time 2; error wait time 1, 5;
    ipv6 { import all; export filter add_communities; };
}
EOF
    ip netns exec "$NS_PEER" bird -c "$WORK/bird.conf" -s "$WORK/bird.ctl" -P "$WORK/bird.pid"
    track_pidfile "$WORK/bird.pid"
}

birdc() { ip netns exec "$NS_PEER" birdc -s "$WORK/bird.ctl" "$@"; }

start_gobgp() {
    cat >"$WORK/gobgp.toml" <<EOF
[global.config]
  as = 65003
  router-id = "192.0.2.2"
  port = -1
EOF
    local address family
    for neighbor in 192.0.2.1/ipv4-unicast 2001:db8::1/ipv6-unicast; do
        address=${neighbor%/*}
        family=${neighbor#*/}
        cat >>"$WORK/gobgp.toml" <<EOF
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$address"
    peer-as = 65001
  [neighbors.timers.config]
    connect-retry = 2
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "$family"
EOF
    done
    ip netns exec "$NS_PEER" setsid gobgpd -f "$WORK/gobgp.toml" --api-hosts 127.0.0.1:50051 \
        --pprof-disable >"$WORK/gobgpd.log" 2>&1 &
    PIDS+=("$!")
    sleep 2
    gobgp global rib add 203.0.113.128/25 community 65003:300 large-community 65003:5:6 -a ipv4
    gobgp global rib add 2001:db8:c::/48 community 65003:300 large-community 65003:5:6 -a ipv6
}

gobgp() { ip netns exec "$NS_PEER" gobgp -u 127.0.0.1 -p 50051 "$@"; }

# Cuts the TCP streams of a pcap into BGP messages, one hex file per sender and transport.
extract() {
    python3 - "$WORK/$1.pcap" "$OUT" "$2" <<'EOF'
import ipaddress, struct, sys
path, out, peer = sys.argv[1:4]
data = open(path, 'rb').read()
endian = '<' if data[:4] == b'\xd4\xc3\xb2\xa1' else '>'
linktype = struct.unpack(endian + 'I', data[20:24])[0]
assert linktype == 1, f'expected Ethernet captures, got link type {linktype}'
streams = {}  # (src, sport, dst, dport) -> {'isn': int, 'first': n, 'segments': {seq: bytes}}
offset, index = 24, 0
while offset + 16 <= len(data):
    caplen = struct.unpack(endian + 'I', data[offset + 8:offset + 12])[0]
    frame = data[offset + 16:offset + 16 + caplen]
    offset += 16 + caplen
    index += 1
    ethertype = struct.unpack('!H', frame[12:14])[0]
    packet = frame[14:]
    if ethertype == 0x0800:
        header = (packet[0] & 0x0f) * 4
        src, dst = packet[12:16], packet[16:20]
        total = struct.unpack('!H', packet[2:4])[0]
        segment = packet[header:total]
    elif ethertype == 0x86dd:
        src, dst = packet[8:24], packet[24:40]
        segment = packet[40:40 + struct.unpack('!H', packet[4:6])[0]]
    else:
        continue
    sport, dport, seq = struct.unpack('!HHI', segment[:8])
    flags = segment[13]
    payload = segment[(segment[12] >> 4) * 4:]
    key = (ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport)
    stream = streams.setdefault(key, {'isn': None, 'first': index, 'segments': {}})
    if flags & 0x02:  # SYN
        stream['isn'] = (seq + 1) & 0xffffffff
    if payload:
        stream['segments'].setdefault(seq, payload)
names = {'192.0.2.1': 'frr', '2001:db8::1': 'frr', '192.0.2.2': peer, '2001:db8::2': peer}
lines = {}
for (src, sport, dst, dport), stream in sorted(streams.items(), key=lambda s: s[1]['first']):
    if stream['isn'] is None or not stream['segments']:
        continue
    wire, expected = b'', stream['isn']
    for seq in sorted(stream['segments'], key=lambda s: (s - stream['isn']) & 0xffffffff):
        payload = stream['segments'][seq]
        skip = (expected - seq) & 0xffffffff
        if skip >= len(payload):
            continue  # retransmission
        wire += payload[skip:]
        expected = (seq + len(payload)) & 0xffffffff
    family = 'ipv4' if src.version == 4 else 'ipv6'
    name = f"{names[str(src)]}-to-{names[str(dst)]}-{family}.hex"
    while len(wire) >= 19:
        length = struct.unpack('!H', wire[16:18])[0]
        if length < 19 or len(wire) < length:
            break
        lines.setdefault(name, []).append(wire[:length].hex())
        wire = wire[length:]
for name, messages in lines.items():
    with open(f'{out}/{name}', 'w') as f:
        f.write('\n'.join(messages) + '\n')
    print(f'{name}: {len(messages)} messages', file=sys.stderr)
EOF
}

run_pair() {
    local peer=$1 peer_as=$2
    log "capturing FRR <-> $peer"
    setup_namespaces
    start_tcpdump "$peer"
    start_frr "$peer_as"
    "start_$peer"
    wait_established
    # ROUTE-REFRESH from each side, then a Cease from each side.
    frr -c 'clear bgp * soft in'
    if [[ $peer == bird ]]; then
        birdc reload in frr4 >/dev/null
        sleep 2
        birdc disable frr4 >/dev/null
    else
        gobgp neighbor 192.0.2.1 softresetin
        sleep 2
        gobgp neighbor 192.0.2.1 disable
    fi
    frr -c 'configure terminal' -c 'router bgp 65001' -c 'neighbor 2001:db8::2 shutdown'
    sleep 3
    stop_processes
    extract "$peer" "$peer"
    remove_namespaces
}

rm -f "$OUT"/*.hex
run_pair bird 65002
run_pair gobgp 65003
log "fixtures written to $OUT"
