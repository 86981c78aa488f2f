"""Cold start of the Lambda functions under `cargo lambda watch --only-lambda-apis`: the time from
the function's process start to the first byte of its first response, and to its end.

    python3 scripts/lambda-cold-start.py RUNTIME_URL BIN_DIR [ROUNDS]

RUNTIME_URL is the `cargo lambda watch --only-lambda-apis` address (http://127.0.0.1:PORT), BIN_DIR
the folder with the built `session-start`, `token-refresh` and `agent-turn` binaries. The
functions get the environment this script runs in (CHATFN_SECRET_KEY, the store...). Each round
sends one request to a function that is not running yet, starts the function's process, and
measures; then stops the process. Prints one line per function: the median over the rounds.
"""

import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

REQUESTS = {
    # A request each function answers from its own routes without a session: a JSON 4xx.
    "session-start": ("POST", "/api/v1/sessions", b"{}"),
    "token-refresh": ("POST", "/api/v1/auth/jwt/claims", b"{}"),
    "agent-turn": ("GET", "/api/chat/cold-start/messages", None),
}


def measure(runtime_url, bin_dir, function):
    method, path, body = REQUESTS[function]
    url = f"{runtime_url}/lambda-url/{function}{path}"
    result = {}

    def call():
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("content-type", "application/json")
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as error:
            response = error
        result["first_byte"] = time.perf_counter()
        response.read()
        result["end"] = time.perf_counter()
        result["status"] = response.status if hasattr(response, "status") else response.code

    client = threading.Thread(target=call)
    client.start()
    time.sleep(0.3)  # the request waits in the runtime API for a function to take it
    env = dict(os.environ)
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=function,
        AWS_LAMBDA_FUNCTION_VERSION="1",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_RUNTIME_API=f"{runtime_url}/.rt/{function}",
    )
    started = time.perf_counter()
    process = subprocess.Popen(
        [os.path.join(bin_dir, function)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client.join(60)
    process.terminate()
    process.wait(10)
    if "first_byte" not in result:
        sys.exit(f"{function}: no response")
    return (result["first_byte"] - started) * 1000, (result["end"] - started) * 1000, result["status"]


def main():
    runtime_url, bin_dir = sys.argv[1].rstrip("/"), sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    for function in REQUESTS:
        samples = [measure(runtime_url, bin_dir, function) for _ in range(rounds)]
        first = statistics.median(s[0] for s in samples)
        end = statistics.median(s[1] for s in samples)
        size = os.path.getsize(os.path.join(bin_dir, function)) / 1e6
        print(
            f"{function}: process start to first byte {first:.1f} ms, to the end {end:.1f} ms "
            f"(median of {rounds}; HTTP {samples[-1][2]}; binary {size:.1f} MB)"
        )


if __name__ == "__main__":
    main()
