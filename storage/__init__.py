"""Artifact store of DreamEdit3D: content-addressed, atomically committed stage outputs.

Formats: arrays in Zarr v3 groups (`<item>.zarr/<name>`, named dimensions, Blosc-zstd chunks, one view per chunk
by default), tables in Parquet with explicit schemas (`<item>.parquet`), weights in safetensors
(`<item>.safetensors`, via safetensors.numpy: the store knows nothing of torch), JSON (`<item>.json`), any file
(`mesh.glb`) and whole folders (`<item>/`).

Layout under the root (a local folder or any fsspec URL: file://, memory://, s3://, ...)::

    objects/<key>/<attempt>/...       the files of one write attempt; never shared between attempts
    objects/<key>/<attempt>.lock      local roots: held (flock) by the live writer of that attempt
    commits/<key>.json                the commit record, written last; its presence is what makes <key> committed
    locks/<key>.lock                  local roots: compute lock, held while a process computes <key>
    locks/<key>.lease                 s3:// roots: compute lock across machines, a lease kept by heartbeats
    ledger/part-<time>-<id>.parquet   run ledger, one file per append
    scratch/<key>/                    in-stage checkpoints (remote roots: in the local cache, uploaded here)

Stores written by older versions keep their commit records in manifests/: opening one moves that folder to
commits/ once (local roots: one atomic rename).

Keys: `artifact_key(stage, code_version, config, inputs)` = `"<stage>-<32 hex>"` over canonical JSON of the
stage name, code version, config and input digests. Digests: `file_digest(path)` for files, `artifact.digest`
(sha256 over the commit record's sorted (path, sha256, size) rows) for artifacts.

Commit protocol: a writer fills a fresh attempt folder (remote roots: a local staging folder, uploaded at the
end), hashes every file, then writes the commit record in one atomic step (local: temp file, fsync, os.replace;
fsspec: a single put). An exception removes the attempt; a SIGKILL leaves an orphan attempt and a free lock file
(or the lock file alone, if it struck before the folder was made), both found by `verify` and removed by the
next write of the key. Reads go only through commit records, which are validated: a path that would leave the
store raises StoreError.

Concurrency: `compute` checks the commit record, takes the key's lock, checks again, and only then runs the stage.
Locks are flock-based across processes on local roots, process-wide for memory://, and absent for other
protocols (two processes may both compute; the last identical commit wins, safely, since attempts never share
files). On remote roots an uncommitted attempt counts as another machine's upload in progress until its newest
file is older than the write lease (`DREAMEDIT3D_WRITE_LEASE_S`, 1 hour), by the object store's own times, so
`verify` and `prune` decide the same way on every host and never remove a live upload.
"""

from storage.artifact import Artifact
from storage.commit import StoreError
from storage.keys import artifact_key, ascii_slug, file_digest
from storage.ledger import Ledger, LedgerRecord
from storage.store import ArtifactStore, default_cache_dir
from storage.verify import VerifyReport
from storage.writer import ArtifactWriter

__all__ = [
    "Artifact",
    "ArtifactStore",
    "ArtifactWriter",
    "Ledger",
    "LedgerRecord",
    "StoreError",
    "VerifyReport",
    "artifact_key",
    "default_cache_dir",
    "file_digest",
]
