"""Command line: run the Drive emulator until SIGTERM/SIGINT.

::

    python -m colabmodels.testing.fakedrive --port 0 --ready-file ready.json \\
        --service-account-file key.json [--data-dir D] [--latency-ms N] \\
        [--bandwidth-bytes-per-s N] [--total-bandwidth-bytes-per-s N] \\
        [--fault-rate P] [--seed N] [--demo-content DIR]

Once it accepts connections (and the key file and demo content are in place)
it writes ``{"url": "http://127.0.0.1:PORT/", "port": PORT, "pid": PID}`` to the
ready file, atomically. SIGTERM or SIGINT stop it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import FakeDrive

logger = logging.getLogger("colabmodels.testing.fakedrive")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m colabmodels.testing.fakedrive",
        description="Serve a Google Drive REST v2 emulator on loopback until killed.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (0: any free port)")
    p.add_argument("--ready-file", type=Path, help="write {\"url\": ...} here once serving")
    p.add_argument("--service-account-file", type=Path, help="write a registered service-account key here")
    p.add_argument("--data-dir", type=Path, help="persist files and metadata here")
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    p.add_argument("--bandwidth-bytes-per-s", type=float, help="bandwidth cap per connection")
    p.add_argument("--total-bandwidth-bytes-per-s", type=float, help="bandwidth cap for all connections")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of a random fault per request")
    p.add_argument("--faults", help='per-kind fault rates as JSON, e.g. \'{"503": 0.05, "drop": 0.01}\'')
    p.add_argument("--seed", type=int, default=0, help="seed for faults and file ids")
    p.add_argument("--demo-content", type=Path, help="import this folder tree into My Drive")
    p.add_argument("--token-lifetime-s", type=float, default=3600, help="access token lifetime")
    p.add_argument(
        "--virus-scan-threshold-bytes",
        type=int,
        default=25 * 1024 * 1024,
        help="web downloads above this size get the confirmation page",
    )
    p.add_argument("--log-level", default="WARNING", help="logging level (default: WARNING)")
    return p


def import_tree(fd: FakeDrive, root: Path) -> int:
    """Put every file below ``root`` at the same relative path in My Drive; returns the count."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir != Path("."):
            fd.mkdir("MyDrive/" + rel_dir.as_posix())
        for name in sorted(filenames):
            rel = (rel_dir / name).as_posix()
            fd.put("MyDrive/" + rel, Path(dirpath) / name, replace=True)
            count += 1
    return count


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    faults: dict[str, float] = json.loads(args.faults) if args.faults else {}
    if args.fault_rate:
        faults["rate"] = args.fault_rate
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        logger.info("fakedrive: signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    fd = FakeDrive(
        data_dir=args.data_dir,
        latency_ms=args.latency_ms,
        bandwidth_bytes_per_s=args.bandwidth_bytes_per_s,
        total_bandwidth_bytes_per_s=args.total_bandwidth_bytes_per_s,
        faults=faults or None,
        seed=args.seed,
        host=args.host,
        port=args.port,
        token_lifetime_s=args.token_lifetime_s,
        virus_scan_threshold_bytes=args.virus_scan_threshold_bytes,
    )
    try:
        fd.start()
        if args.demo_content:
            n = import_tree(fd, args.demo_content)
            logger.info("fakedrive: imported %d demo files from %s", n, args.demo_content)
        # This process only serves: what is loaded now lives as long as it does, and a full
        # garbage collection would walk every record (a pause of seconds at 300,000 files).
        gc.freeze()
        if args.service_account_file:
            fd.write_service_account(args.service_account_file)
        if args.ready_file:
            ready = {"url": fd.url, "port": fd.port, "pid": os.getpid()}
            if args.service_account_file:
                ready["service_account_file"] = str(args.service_account_file)
            _write_atomically(args.ready_file, json.dumps(ready))
        logger.info("fakedrive: serving at %s", fd.url)
        while not stop.wait(0.5):
            pass
    finally:
        fd.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
