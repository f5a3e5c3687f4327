"""Draw the committed PhysioNet 2019 sample (data/physionet2019-sample/) from training_setA.tar.gz.

Rule (deterministic, no randomness): take the first WINDOW (3000) patient files in patient-id order;
walking them in that order keep the first SEPTIC (60) septic patients (any hour with SepsisLabel 1)
and the first PATIENTS - SEPTIC (240) non-septic ones. The files are copied byte for byte into
``training_setA/pNNNNNN.psv`` of a tar.gz with normalized metadata (sorted members, mtime 0, root,
mode 0644, gzip header without name or time), so re-running the script reproduces the same bytes.
Also writes SHA256SUMS.psv for those files (the original's format) and, when the original
SHA256SUMS.psv lies next to the archive (or is given with --sums), checks every file against it.

Usage: .venv/bin/python scripts/make_physionet_sample.py /path/to/training_setA.tar.gz [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import heapq
import io
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

from lakehouse.config import PROJECT_ROOT
from lakehouse.devices.physionet import SAMPLE_ARCHIVE, iter_psv_files, parse_psv

WINDOW = 3000
PATIENTS = 300
SEPTIC = 60
PREFIX = "training_setA"
SUMS_NAME = "SHA256SUMS.psv"


def select_sample(
    files: Iterable[tuple[str, bytes]], window: int = WINDOW, patients: int = PATIENTS, septic: int = SEPTIC
) -> list[tuple[str, bytes, bool]]:
    """(patient id, raw file, septic) of the sample, in patient-id order, following the module's rule."""
    first = heapq.nsmallest(window, files, key=lambda item: item[0])
    chosen: list[tuple[str, bytes, bool]] = []
    quota = {True: septic, False: patients - septic}
    for pid, data in first:
        is_septic = parse_psv(pid, data.decode("utf-8")).septic
        if quota[is_septic] > 0:
            quota[is_septic] -= 1
            chosen.append((pid, data, is_septic))
    if any(quota.values()):
        raise SystemExit(f"the first {window} patients lack {quota[True]} septic / {quota[False]} non-septic ones")
    return chosen


def _member(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if directory else 0o644
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    return info


def write_archive(path: Path, sample: list[tuple[str, bytes, bool]]) -> None:
    """Write the sample as a reproducible tar.gz with the original's layout (training_setA/pNNNNNN.psv)."""
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        tar.addfile(_member(f"{PREFIX}/", 0, directory=True))
        for pid, data, _ in sample:
            tar.addfile(_member(f"{PREFIX}/{pid}.psv", len(data)), io.BytesIO(data))


def sums_lines(sample: list[tuple[str, bytes, bool]]) -> list[str]:
    """``<sha256>  training_setA/pNNNNNN.psv`` lines, as in the original SHA256SUMS.psv."""
    return [f"{hashlib.sha256(data).hexdigest()}  {PREFIX}/{pid}.psv" for pid, data, _ in sample]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, draw the sample, write archive and checksums, print the counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="training_setA.tar.gz (or a directory of .psv files)")
    parser.add_argument("--out", type=Path, default=SAMPLE_ARCHIVE.parent, help="output directory")
    parser.add_argument("--sums", type=Path, help="original SHA256SUMS.psv to verify against (default: beside archive)")
    args = parser.parse_args(argv)

    sample = select_sample((pid, data) for pid, _, data in iter_psv_files(args.archive))
    args.out.mkdir(parents=True, exist_ok=True)
    archive_out = args.out / SAMPLE_ARCHIVE.name
    write_archive(archive_out, sample)
    lines = sums_lines(sample)
    (args.out / SUMS_NAME).write_text("".join(f"{line}\n" for line in lines), encoding="ascii")

    original = args.sums or args.archive.parent / SUMS_NAME
    if original.is_file():
        known = set(original.read_text(encoding="ascii").splitlines())
        wrong = [line for line in lines if line not in known]
        if wrong:
            raise SystemExit(f"{len(wrong)} sampled file(s) differ from {original}, e.g. {wrong[0]}")
        print(f"verified against {original}")
    rows = sum(len(parse_psv(pid, data.decode("utf-8")).rows) for pid, data, _ in sample)
    septic = sum(is_septic for _, _, is_septic in sample)
    shown = archive_out.relative_to(PROJECT_ROOT) if archive_out.is_relative_to(PROJECT_ROOT) else archive_out
    print(
        f"{shown}: {archive_out.stat().st_size} bytes, {len(sample)} patients ({septic} septic), "
        f"{rows} patient-hours, {sample[0][0]}..{sample[-1][0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
