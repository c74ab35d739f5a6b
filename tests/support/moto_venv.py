"""The pinned moto venv and moto's server from it, for scripts/conformance_gate.py (standard
library only, like the gate).

The venv is the one the Rust tests make (tests/support/python.rs, `python_venv("sqs-venv", …)`
in sqs.rs): `target/sqs-venv` holding the pins of `moto-requirements.txt`, reused while
`moto.server` and `boto3` import in it. The server is `moto_server.py` (moto's, with the SQS
fixes the tests use), serving every service on one port.

    python3 tests/support/moto_venv.py        makes the venv if needed; prints its python
"""
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAME = "sqs-venv"
IMPORTS = "moto.server, boto3"


def packages():
    """The pins of moto-requirements.txt."""
    with open(os.path.join(HERE, "moto-requirements.txt")) as f:
        return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def _ready(python):
    return os.path.exists(python) and subprocess.run(
        [python, "-c", f"import {IMPORTS}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ).returncode == 0


def venv_python():
    """The venv's python, the venv made first if it is missing; RuntimeError says why it cannot be."""
    venv = os.path.join(target_dir(), NAME)
    python = os.path.join(venv, "bin", "python")
    if _ready(python):
        return python
    made = subprocess.run(["python3", "-m", "venv", venv], capture_output=True, text=True)
    if made.returncode != 0:
        raise RuntimeError(f"python3 -m venv failed: {made.stderr.strip()}")
    pins = packages()
    pip = subprocess.run(
        [os.path.join(venv, "bin", "pip"), "install", "--quiet", *pins],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(pins)} failed: {pip.stderr.strip()}")
    if not _ready(python):
        raise RuntimeError(f"the venv lacks {IMPORTS} after pip install {' '.join(pins)}")
    return python


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(python, log, account=None):
    """moto's server on a free port of 127.0.0.1, its stderr to the file `log`, every request
    in `account` (moto's MOTO_ACCOUNT_ID; by default moto's 123456789012, whatever the access
    key); (process, endpoint) once it listens. The caller terminates the process."""
    port = free_port()
    env = dict(os.environ)
    if account:
        env["MOTO_ACCOUNT_ID"] = account
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [python, os.path.join(HERE, "moto_server.py"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
    started = time.monotonic()
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            pass
        if process.poll() is not None:
            with open(log, errors="replace") as f:
                raise RuntimeError(f"moto_server exited with {process.returncode}: {f.read()[-2000:]}")
        if time.monotonic() - started > 30:
            process.terminate()
            raise RuntimeError("nothing listens on moto_server's port after 30 s")
        time.sleep(0.1)


if __name__ == "__main__":
    try:
        print(venv_python())
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
