# Sourced by the scripts that choose a port for a server started later (scripts/stand-in.sh,
# scripts/lambda-e2e.sh, scripts/lambda-cold-start.sh).
#
# free_port prints a loopback port that is free now, chosen below the system's ephemeral range.
# A port the system hands out for `bind(0)` comes from that range, which is also where every
# outgoing connection takes its local port: a server started seconds later (the mock model of a
# test file, after dozens of Lambda instances have connected to the runtime API and the store)
# could find its port held by one of them, and fail with EADDRINUSE. Below the range only
# listeners can take it.
free_port() {
  python3 - <<'PY'
import random
import socket

def binds(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True

try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
except (OSError, ValueError, IndexError):
    low = 0
candidates = random.sample(range(10000, low), min(200, low - 10000)) if low > 10100 else []
port = next((p for p in candidates if binds(p)), None)
if port is None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
print(port)
PY
}
