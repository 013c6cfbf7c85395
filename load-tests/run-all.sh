#!/usr/bin/env bash
# Runs the benchmark suite behind BENCHMARKS.md, one scenario after another (they must not
# overlap: hub, fakes, Redis and the load generator share the machine's cores). Each run writes
# load-tests/results/<name>.json and its charts (<name>-throughput.svg, -latency.svg,
# -memory.svg); the printed reports go to load-tests/results/<name>.txt.
#   bash load-tests/run-all.sh            # everything (about 25 minutes on 2 cores)
#   bash load-tests/run-all.sh steady-10k failover   # only the named runs
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p switchboard -p switchboard-load-tests >&2
out=load-tests/results
lg=./target/release/loadgen

# In Redis mode each message waits on more round trips: 32 messages in flight left the two
# cores partly idle (3,884-3,926 replies/s against 4,559-4,568 with 64, session 12).
declare -A runs=(
  [throughput-max]="throughput --conversations 1000 --messages 100000 --rate 0 --concurrency 32"
  [throughput-5k]="throughput --conversations 1000 --messages 100000 --rate 5000"
  [steady-10k]="steady --conversations 10000 --messages 60000 --rate 2000 --ai-delay-ms 300"
  [chats-10k]="chats --conversations 10000 --think-ms 5000 --seconds 60 --ai-delay-ms 300"
  [burst]="burst --conversations 1000 --rate 2000 --factor 4 --baseline-secs 10 --burst-secs 5"
  [overload]="overload --sustainable 10000 --seconds 10"
  [soak]="soak --minutes 10 --rate 1000 --conversations 10000 --ai-delay-ms 300"
  [idle-rss-live]="idle-rss --conversations 100000"
  [idle-rss-passivated]="idle-rss --conversations 100000 --idle-timeout-secs 10"
  [mcp-tools]="mcp-tools --tool queue_stats --concurrency 32 --seconds 10"
  [console-fanout]="console-fanout --sessions 1000 --customers 200 --rate 10"
  [throughput-redis-max]="throughput --conversations 1000 --messages 50000 --rate 0 --concurrency 64 --redis"
  [throughput-redis-2000]="throughput --conversations 1000 --messages 40000 --rate 2000 --redis"
  [throughput-redis-5000]="throughput --conversations 1000 --messages 50000 --rate 5000 --redis"
  [steady-redis-10k]="steady --conversations 10000 --messages 40000 --rate 2000 --ai-delay-ms 300 --redis"
  [overload-redis]="overload --sustainable 3000 --seconds 10 --redis"
  [failover]="failover --rate 1500"
)
order=(throughput-max throughput-5k steady-10k chats-10k burst overload idle-rss-live idle-rss-passivated
  mcp-tools console-fanout throughput-redis-max throughput-redis-2000 throughput-redis-5000 steady-redis-10k
  overload-redis failover soak)
[ $# -gt 0 ] && order=("$@")
status=0
for name in "${order[@]}"; do
  args=${runs[$name]:?unknown run $name}
  echo "== $name: loadgen $args" >&2
  # shellcheck disable=SC2086 # the arguments are word lists on purpose
  $lg $args --out "$out/$name.json" > "$out/$name.txt" 2> "$out/$name.progress"
  code=$?
  echo "   exit $code ($( [ $code -eq 0 ] && echo clean || echo 'see the report' ))" >&2
  [ $code -eq 0 ] || status=1
done
exit $status
