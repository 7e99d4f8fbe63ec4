"""Fetch registry assets into their local_path: hub files with huggingface_hub at one resolved commit, other files
over HTTPS. Everything is staged beside the target (`.<name>.fetch/`), checked against the hub's own digests and the
registry's sha256, and only then moved into place; the registry gets the sha256, size and commit it did not pin."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from chexbench_common.errors import BadInputError, ChexbenchError, MissingResourceError
from chexbench_common.hashing import sha256_file, sha256_path, tree_digest
from chexbench_common.lock import FolderLock

from .plan import human
from .registry import Asset, declared_bytes, resolve_path, set_fields

Say = Callable[[str], None]
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HUB_METADATA = ".cache"  # huggingface_hub's bookkeeping inside a local_dir download


class HashMismatchError(MissingResourceError):
    """Fetched bytes that are not what the hub or the registry says: everything fetched for the asset is removed."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int | None
    sha256: str | None  # LFS files: the content's sha256
    git_sha1: str | None  # other files: the git blob id


@dataclass(frozen=True)
class Staged:
    """Verified files in the staging folder: {repository path: sha256}, their bytes and the commit they came from."""

    digests: dict[str, str]
    size: int
    commit: str | None


@contextlib.contextmanager
def _online():
    """huggingface_hub with downloads allowed. The library reads HF_HUB_OFFLINE once, at import (make and the tests
    set it for everything else); fetch is the one command that downloads, on request, so it lifts the switch for its
    own calls only and puts it back after."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved


def _endpoint() -> str:
    """HF_ENDPOINT as set now (the library's own copy was read at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _matches(path: str, pattern: str) -> bool:
    """Glob per path segment: `*` never crosses a `/`."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatchcase(p, w) for p, w in zip(parts, wanted, strict=True))


def select_files(asset: Asset, listing: list[RemoteFile], where: str) -> list[RemoteFile]:
    """The repository files the stage loads: each `files:` entry must match (its first alternative that does),
    `optional_files:` entries add what they match; a single-file asset names its file."""
    if asset.file:
        chosen = [f for f in listing if f.path == asset.file]
        if not chosen:
            raise MissingResourceError(f"{asset.id}: {asset.file} is not in {where}{_unverified(asset)}")
        return chosen
    chosen: dict[str, RemoteFile] = {}
    for entry in asset.files:
        alternatives = [a.strip() for a in entry.split("|")]
        found = next((m for a in alternatives if (m := [f for f in listing if _matches(f.path, a)])), None)
        if found is None:
            raise MissingResourceError(
                f"{asset.id}: no file of {where} matches {entry!r} (files: in the registry){_unverified(asset)}"
            )
        chosen.update((f.path, f) for f in found)
    for pattern in asset.optional_files:
        chosen.update((f.path, f) for f in listing if _matches(f.path, pattern))
    return sorted(chosen.values(), key=lambda f: f.path)


def _unverified(asset: Asset) -> str:
    return f" (the registry marks it unverified: {asset.unverified})" if asset.unverified else ""


def _git_sha1(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()


def _verify(asset: Asset, staged: Path, remote: RemoteFile) -> str:
    """The file's sha256, after checking it against the hub's size and digest (LFS sha256, or git blob id)."""
    size = staged.stat().st_size
    digest = sha256_file(staged)
    problem = None
    if remote.size is not None and size != remote.size:
        problem = f"has {size} bytes, the hub lists {remote.size}"
    elif remote.sha256 is not None and digest != remote.sha256:
        problem = f"sha256 {digest[:12]}… differs from the hub's {remote.sha256[:12]}…"
    elif remote.sha256 is None and remote.git_sha1 is not None and _git_sha1(staged) != remote.git_sha1:
        problem = f"differs from the hub's git blob {remote.git_sha1[:12]}…"
    if problem:
        raise HashMismatchError(f"{asset.id}: the fetched {remote.path} {problem}; nothing was kept, fetch again")
    return digest


def _hub_error(asset: Asset, exc: Exception, endpoint: str) -> ChexbenchError:
    """One line saying what to do about a failed hub call."""
    from huggingface_hub import errors

    where = f"{asset.repo} at {endpoint}"
    if isinstance(exc, errors.GatedRepoError):
        token = " (the HF_TOKEN set has no access to it yet)" if os.environ.get("HF_TOKEN") else ""
        return MissingResourceError(
            f"{asset.id}: {asset.repo} is gated: accept its terms at {endpoint}/{asset.repo} while logged in, then "
            f"set HF_TOKEN to a read token of that account and fetch again{token}"
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return MissingResourceError(
            f"{asset.id}: revision {asset.revision} not found in {where}; fix revision: in the registry"
            f"{_unverified(asset)}"
        )
    if isinstance(exc, errors.RepositoryNotFoundError):
        return MissingResourceError(
            f"{asset.id}: repository {where} not found (or private: set HF_TOKEN){_unverified(asset)}"
        )
    if isinstance(exc, errors.RemoteEntryNotFoundError):
        return MissingResourceError(f"{asset.id}: a file is missing from {where}: {_first_line(exc)}")
    if isinstance(exc, errors.HfHubHTTPError) and exc.response is not None:
        return MissingResourceError(f"{asset.id}: HTTP {exc.response.status_code} from {where}: {_first_line(exc)}")
    if isinstance(exc, OSError) and not isinstance(exc, errors.LocalEntryNotFoundError):  # short body, full disk
        return MissingResourceError(f"{asset.id}: download from {endpoint} failed ({_first_line(exc)}); fetch again")
    return MissingResourceError(
        f"{asset.id}: cannot download from {endpoint} ({_first_line(exc)}); check the network, a proxy or HF_ENDPOINT"
    )


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _stage_hub(asset: Asset, data: Path, say: Say) -> Staged:
    import httpx2
    from huggingface_hub import HfApi, errors, hf_hub_download

    endpoint = _endpoint()
    revision = asset.revision or "main"
    try:
        info = HfApi(endpoint=endpoint).model_info(asset.repo, revision=revision, files_metadata=True)
        listing = [
            RemoteFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None, None if s.lfs else s.blob_id)
            for s in info.siblings or []
        ]
        commit = info.sha or revision
        chosen = select_files(asset, listing, f"{asset.repo} at {commit[:12]}")
        total = sum(f.size or 0 for f in chosen)
        say(f"{asset.id}: {len(chosen)} file(s), {human(total)}, from {asset.repo} at {commit[:12]}")
        for number, remote in enumerate(chosen, 1):
            say(f"{asset.id}: [{number}/{len(chosen)}] {remote.path} ({human(remote.size)})")
            hf_hub_download(asset.repo, remote.path, revision=commit, local_dir=data, endpoint=endpoint)
    except (errors.HfHubHTTPError, errors.LocalEntryNotFoundError, httpx2.HTTPError, OSError, ValueError) as exc:
        raise _hub_error(asset, exc, endpoint) from None
    shutil.rmtree(data / _HUB_METADATA, ignore_errors=True)
    digests = {f.path: _verify(asset, data / f.path, f) for f in chosen}
    return Staged(digests, sum((data / f.path).stat().st_size for f in chosen), commit)


def _check_url(asset: Asset) -> None:
    parsed = urlparse(asset.url)
    if parsed.scheme != "https" and not (parsed.scheme == "http" and parsed.hostname in LOOPBACK):
        raise BadInputError(f"{asset.id}: {asset.url} is not an https URL; fetch downloads over https only")


def _stage_url(asset: Asset, data: Path, say: Say) -> Staged:
    """One file over HTTPS into `<name>.part`, continuing a part left by an interrupted fetch (Range request); the
    client also resumes by itself when a connection drops mid-body."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.file_download import http_get

    _check_url(asset)
    name = PurePosixPath(urlparse(asset.url).path).name
    part = data / f"{name}.part"
    data.mkdir(parents=True, exist_ok=True)
    resume = part.stat().st_size if part.exists() else 0
    say(f"{asset.id}: {asset.url}" + (f" (resuming after {human(resume)})" if resume else ""))
    try:
        with open(part, "ab") as fh:
            http_get(asset.url, fh, resume_size=resume, displayed_filename=name)
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if not (status == 416 and resume):  # 416: the part already holds the whole file; its hash decides below
            if part.stat().st_size == 0:
                part.unlink()
            raise MissingResourceError(f"{asset.id}: HTTP {status} for {asset.url}") from None
    except (httpx2.HTTPError, OSError) as exc:
        raise MissingResourceError(
            f"{asset.id}: cannot download {asset.url} ({_first_line(exc)}); the part is kept: fetch again to resume"
        ) from None
    staged = data / name
    os.replace(part, staged)
    return Staged({name: sha256_file(staged)}, staged.stat().st_size, None)


def _digest(asset: Asset, staged: Staged) -> str:
    """The asset's sha256 as `assets pin` records it: the file's, or sha256_tree's over the folder."""
    if asset.files:
        return tree_digest(staged.digests)
    return next(iter(staged.digests.values()))


def _refuse_digest(asset: Asset, digest: str) -> str | None:
    if asset.sha256 and digest != asset.sha256:
        return f"does not match the pinned sha256 {asset.sha256[:12]}… (got {digest[:12]}…)"
    if not asset.sha256 and asset.sha256_prefix and not digest.startswith(asset.sha256_prefix):
        return f"sha256 {digest[:12]}… does not start with the publisher's {asset.sha256_prefix}"
    return None


def _present(asset: Asset, target: Path) -> str:
    """The line for an asset already in place; refuses one that differs from its pin."""
    if asset.sha256 is None:
        return (
            f"{asset.id}: present at {target}, not pinned (chexbench-bench assets pin {asset.id} records it; "
            "move it away to fetch it instead)"
        )
    if sha256_path(target) != asset.sha256:
        raise MissingResourceError(
            f"{asset.id}: {target} exists but does not match the pinned sha256 {asset.sha256[:12]}…; move it away "
            "and fetch again (nothing was changed)"
        )
    return f"{asset.id}: present at {target} (sha256 matches its pin)"


def fetch(asset: Asset, registry: Path, repo_root: Path, say: Say) -> str:
    """Fetch one asset into place and pin it; returns the line that says what happened."""
    target = resolve_path(asset, repo_root)
    if not asset.fetchable or target is None:
        raise MissingResourceError(f"{asset.id}: nothing to fetch from: {asset.source}")
    if target.exists():
        return _present(asset, target)
    if asset.unverified:
        say(f"{asset.id}: note: unverified source: {asset.unverified}")
    staging = target.parent / f".{target.name}.fetch"
    data = staging / "data"
    with FolderLock(staging):
        try:
            staged = _stage_url(asset, data, say) if asset.url else _stage_hub(asset, data, say)
            digest = _digest(asset, staged)
            refused = _refuse_digest(asset, digest)
            if refused:
                raise HashMismatchError(
                    f"{asset.id}: the fetched {'files' if asset.files else 'file'} {refused}; nothing was kept "
                    f"(the source changed, or the registry is wrong: check {registry})"
                )
            _move_into_place(asset, data, target)
        except HashMismatchError:
            shutil.rmtree(data, ignore_errors=True)
            raise
        finally:
            _discard_if_nothing_fetched(data)
    _remove_if_empty(staging)
    pinned = _pin(asset, registry, digest, staged)
    return f"{asset.id}: fetched {human(staged.size)} into {target}" + (f"; pinned {pinned}" if pinned else "")


def _move_into_place(asset: Asset, data: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if asset.files:
        os.replace(data, target)
    else:
        name = asset.file or PurePosixPath(urlparse(asset.url).path).name
        os.replace(data / name, target)


def _discard_if_nothing_fetched(data: Path) -> None:
    """After a failure, keep the staged files for the next fetch to resume from, but not a folder holding nothing
    except the client's bookkeeping (a refused request still creates it)."""
    if data.is_dir() and not any(
        p.is_file() and _HUB_METADATA not in p.relative_to(data).parts for p in data.rglob("*")
    ):
        shutil.rmtree(data)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()


def _pin(asset: Asset, registry: Path, digest: str, staged: Staged) -> str:
    """Record what the registry did not pin: sha256, exact size, the commit a branch or tag resolved to."""
    fields: dict[str, str | int] = {}
    if asset.sha256 is None:
        fields["sha256"] = digest
    if declared_bytes(asset) != (staged.size, True):
        fields["size"] = staged.size
    if staged.commit and asset.revision != staged.commit:
        fields["revision"] = staged.commit
    if fields:
        set_fields(registry, asset.id, fields)
    return ", ".join(f"{k} {str(v)[:12]}" for k, v in fields.items())


def fetch_all(assets: list[Asset], registry: Path, repo_root: Path, say: Say) -> list[ChexbenchError]:
    """Fetch each asset in turn; a failure is said in its line and the next asset is fetched all the same."""
    failures = []
    for asset in assets:
        with _online():
            try:
                say(fetch(asset, registry, repo_root, say))
            except ChexbenchError as exc:
                failures.append(exc)
                for line in exc.lines():
                    say(f"error: {line}")
    return failures
