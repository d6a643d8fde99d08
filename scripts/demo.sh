#!/bin/bash
# Shows cloudviz-agent applying policy/examples/cloudviz-node.json to a
# throwaway "node" network namespace, and which real connections from two
# clients -- one in a private range, one public -- get through afterwards.
# Everything lives in namespaces that are removed on exit; the host's own
# ruleset and interfaces are never touched.
#
# usage: scripts/demo.sh BINARY          (as root; BINARY is the built agent)
# Then the daemon takes over the node, a CloudViz control plane (the test
# fixture, over mutual TLS) reports an incident, and the public client is
# blocked within a second and unblocked again. Last, Debian's sshd runs on
# the node and the public client fails to log in 5 times: the agent reads
# the failures from the journal and blocks the client on its own.
# Exits non-zero if any flow does not do what the policy says it should.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 BINARY" >&2
	exit 2
fi
if [ "$(id -u)" != 0 ]; then
	echo "$0: must run as root (it creates network namespaces)" >&2
	exit 2
fi
AGENT=$(readlink -f "$1")
[ -x "$AGENT" ] || { echo "$0: $1: not an executable" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
POLICY=$ROOT/policy/examples/cloudviz-node.json
NETNS_PY=$ROOT/tests/integration/netns.py

# cvzt-<pid>-*: the integration tests' prefix, so a killed demo is reaped
NODE=cvzt-$$-node PRIV=cvzt-$$-private PUB=cvzt-$$-public
server_pid="" agent_pid="" cp_pid=""
work=$(mktemp -d /tmp/cvz-demo.XXXXXX)

cleanup() {
	exec 3>&- 2>/dev/null || true
	for pid in $agent_pid $cp_pid $server_pid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	for ns in "$NODE" "$PRIV" "$PUB"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_ns() { ns=$1; shift; ip -n "$ns" "$@"; }

echo "== topology: namespaces $NODE, $PRIV, $PUB"
for ns in "$NODE" "$PRIV" "$PUB"; do
	ip netns add "$ns"
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
	in_ns "$ns" link set lo up
done
# veth pairs are created inside the namespaces, never on the host
in_ns "$NODE" link add priv0 type veth peer name eth0 netns "$PRIV"
in_ns "$NODE" link add pub0 type veth peer name eth0 netns "$PUB"
in_ns "$NODE" link set priv0 up
in_ns "$NODE" link set pub0 up
in_ns "$PRIV" link set eth0 up
in_ns "$PUB" link set eth0 up
in_ns "$NODE" addr add 10.0.0.1/24 dev priv0
in_ns "$NODE" addr add fd00::1/64 dev priv0 nodad
in_ns "$NODE" addr add 203.0.113.1/24 dev pub0
in_ns "$NODE" addr add 2001:db8::1/64 dev pub0 nodad
in_ns "$NODE" route add 172.18.0.2/32 via 10.0.0.2
in_ns "$PRIV" addr add 10.0.0.2/24 dev eth0
in_ns "$PRIV" addr add 172.18.0.2/32 dev eth0    # the container network, for 5432
in_ns "$PRIV" addr add fd00::2/64 dev eth0 nodad
in_ns "$PUB" addr add 203.0.113.2/24 dev eth0
in_ns "$PUB" addr add 2001:db8::2/64 dev eth0 nodad
echo "   node:    10.0.0.1 fd00::1 (private side)  203.0.113.1 2001:db8::1 (public side)"
echo "   private: 10.0.0.2 172.18.0.2 fd00::2      public: 203.0.113.2 2001:db8::2"

PORTS=22,80,443,8000,5432,9999
python3 "$NETNS_PY" serve "$NODE" --tcp "$PORTS" >"$work/server" 2>&1 &
server_pid=$!
for _ in $(seq 50); do
	grep -q ready "$work/server" && break
	kill -0 "$server_pid" 2>/dev/null || { cat "$work/server" >&2; exit 1; }
	sleep 0.1
done
grep -q ready "$work/server" || { echo "listeners did not start" >&2; exit 1; }
echo "   listening on the node: tcp $PORTS (IPv4 and IPv6)"

# client  namespace  source  node-address  port  expected
cat >"$work/flows" <<EOF
private $PRIV 10.0.0.2    10.0.0.1    22   PASS
private $PRIV 10.0.0.2    10.0.0.1    80   PASS
private $PRIV 10.0.0.2    10.0.0.1    443  PASS
private $PRIV 10.0.0.2    10.0.0.1    8000 PASS
private $PRIV 10.0.0.2    10.0.0.1    5432 DROP
private $PRIV 10.0.0.2    10.0.0.1    9999 DROP
private $PRIV 172.18.0.2  10.0.0.1    5432 PASS
private $PRIV fd00::2     fd00::1     22   PASS
private $PRIV fd00::2     fd00::1     8000 PASS
private $PRIV fd00::2     fd00::1     5432 DROP
public  $PUB  203.0.113.2 203.0.113.1 22   PASS
public  $PUB  203.0.113.2 203.0.113.1 80   PASS
public  $PUB  203.0.113.2 203.0.113.1 443  PASS
public  $PUB  203.0.113.2 203.0.113.1 8000 DROP
public  $PUB  203.0.113.2 203.0.113.1 5432 DROP
public  $PUB  203.0.113.2 203.0.113.1 9999 DROP
public  $PUB  2001:db8::2 2001:db8::1 22   PASS
public  $PUB  2001:db8::2 2001:db8::1 443  PASS
public  $PUB  2001:db8::2 2001:db8::1 8000 DROP
public  $PUB  2001:db8::2 2001:db8::1 9999 DROP
EOF

# probe_all: one real TCP connect per flow, all at once, 1 s timeout;
# prints one outcome per line (accepted, dropped, refused, ...)
probe_all() {
	awk '{print $2, $3, $4, $5, "tcp"}' "$work/flows" |
		python3 "$NETNS_PY" probe --timeout 1 | awk '{print $NF}'
}

total=$(wc -l <"$work/flows")
ok=$(probe_all | grep -c '^accepted$' || true)
echo
echo "== before the policy: $ok of $total flows connect"
[ "$ok" -eq "$total" ] || { echo "the topology is broken; not a policy result" >&2; exit 1; }

echo
echo "== $AGENT apply $(basename "$POLICY")  (in $NODE)"
if ! ip netns exec "$NODE" "$AGENT" apply "$POLICY"; then
	echo "apply failed" >&2
	exit 1
fi

echo
echo "== flows with the policy applied (real TCP connects, 1 s timeout)"
printf '   %-8s %-12s %-12s %-5s %-9s %-7s\n' CLIENT SOURCE "NODE ADDR" PORT EXPECTED RESULT
mismatches=0
while read -r client _ src dst port expected outcome; do
	case $outcome in
	accepted) result=PASS ;;
	dropped) result=DROP ;;
	*) result=$outcome ;;
	esac
	mark=""
	if [ "$result" != "$expected" ]; then
		mark="  <-- MISMATCH"
		mismatches=$((mismatches + 1))
	fi
	printf '   %-8s %-12s %-12s %-5s %-9s %-7s%s\n' \
		"$client" "$src" "$dst" "$port" "$expected" "$result" "$mark"
done < <(paste -d' ' "$work/flows" <(probe_all))

echo
echo "== live ruleset in the node: nft list table inet cloudviz"
ip netns exec "$NODE" nft list table inet cloudviz | sed 's/^/   /'

echo
if [ "$mismatches" -ne 0 ]; then
	echo "demo: $mismatches of $total flows differ from the policy" >&2
	exit 1
fi
echo "demo: all $total flows behave as the policy says"

# ---- the daemon and the control API ------------------------------------
CP_ADDR=203.0.113.10
in_ns "$PUB" addr add $CP_ADDR/24 dev eth0
echo
echo "== a CloudViz control plane at https://$CP_ADDR:8443 (the test fixture, mutual TLS)"
mkfifo "$work/publish"
python3 "$ROOT/tests/integration/controlplane.py" --ns "$PUB" --addr $CP_ADDR --port 8443 \
	--pki "$work/pki" --node-id demo-node <"$work/publish" >"$work/cp.log" 2>&1 &
cp_pid=$!
exec 3>"$work/publish"
wait_for() { # FILE PATTERN: up to 20 s
	for _ in $(seq 200); do
		grep -q "$2" "$1" && return 0
		sleep 0.1
	done
	echo "timed out waiting for '$2' in $1:" >&2
	cat "$1" >&2
	return 1
}
wait_for "$work/cp.log" '^ready' || exit 1
cat >"$work/agent.json" <<JSON
{ "node_id": "demo-node", "policy": "$POLICY", "state_dir": "$work/state",
  "socket": "$work/ctl.sock", "table_owner": "off",
  "control_api": { "url": "https://$CP_ADDR:8443", "ca_file": "$work/pki/ca.pem",
    "cert_file": "$work/pki/client.pem", "key_file": "$work/pki/client.key",
    "token_file": "$work/pki/token", "wait": 30 } }
JSON
echo "== $AGENT run  (in $NODE; its audit journal goes to $work/agent.log)"
ip netns exec "$NODE" "$AGENT" run -c "$work/agent.json" >"$work/agent.log" 2>&1 &
agent_pid=$!
wait_for "$work/cp.log" '^report' || exit 1
"$AGENT" status -s "$work/ctl.sock" | sed 's/^/   /'

web_from_public() { # prints accepted / dropped for tcp 443 from 203.0.113.2
	echo "$PUB 203.0.113.2 203.0.113.1 443 tcp" |
		python3 "$NETNS_PY" probe --timeout 1 | awk '{print $NF}'
}
echo
echo "   public client -> node:443 before the incident: $(web_from_public)"
echo '== the control plane publishes: block 203.0.113.2 for incident INC-DEMO-1'
start=$(date +%s%N)
echo '{"id": "ins-demo-1", "action": "block", "targets": ["203.0.113.2", "2001:db8::2"], "ttl": 3600, "incident_id": "INC-DEMO-1", "severity": "high", "reason": "Multiple failed logins"}' >&3
for _ in $(seq 200); do
	ip netns exec "$NODE" nft list set inet cloudviz dynamic_v4 2>/dev/null | grep -q 203.0.113.2 && break
	sleep 0.005
done
echo "   seen in the kernel by a polling nft after $(( ($(date +%s%N) - start) / 1000000 )) ms (bench/control_bench.py measures the agent alone)"
outcome=$(web_from_public)
echo "   public client -> node:443 now: $outcome"
[ "$outcome" = dropped ] || { echo "demo: the control API block did not take effect" >&2; exit 1; }
wait_for "$work/cp.log" 'report.*ins-demo-1' || exit 1
echo "   the agent's report: $(grep 'report.*ins-demo-1' "$work/cp.log" | tail -1 | cut -c1-160)..."
echo '== the control plane publishes: unblock 203.0.113.2'
echo '{"id": "ins-demo-2", "action": "unblock", "targets": ["203.0.113.2", "2001:db8::2"]}' >&3
wait_for "$work/cp.log" 'report.*ins-demo-2' || exit 1
outcome=$(web_from_public)
echo "   public client -> node:443 now: $outcome"
[ "$outcome" = accepted ] || { echo "demo: the unblock did not take effect" >&2; exit 1; }
echo
echo "== the agent's audit trail (journald when it runs; here logfmt on stderr)"
if grep -q 'message=' "$work/agent.log"; then
	grep -o 'message="[^"]*"' "$work/agent.log" | sed 's/^message=/   /'
else
	echo "   (sent to journald: journalctl -t cloudviz-agent -n 20)"
fi

# ---- local detection: failed ssh logins, read from the journal -----------
echo
echo "== local detection: the agent reads sshd's failed logins from the journal and blocks on its own"
# this agent logs to stderr; detection needs a journal: a new agent, with a
# private journald (with-journald), takes over the node. Port 22 goes to sshd.
kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
agent_pid="" server_pid=""
"$ROOT/tests/integration/with-journald" python3 "$ROOT/scripts/demo_detect.py" \
	"$AGENT" "$NODE" "$PUB" 203.0.113.2 203.0.113.1 "$work" || exit 1
echo
echo "demo: the control plane's block and unblock reached the kernel and were reported back"
