"""Make one image the app's current one. The only place that does it: the puller's ready
and fallback paths and `rollback` (and later `update`) all come here.

Two steps, so that a caller can check everything it needs before anything changes:
`locate` finds the image, loading it from its rollback archive when it was pruned, and
writes none of the app's files; `activate` then writes the lock (when asked), the env file
the run unit reads, the history, the archive, and saves the state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import state
from .classify import Failure
from .config import AppConfig
from .engine import Engine, LocalImage
from .reference import ImageRef

log = logging.getLogger("pullunit")

Inspect = Callable[[str], LocalImage | None]  # an engine's inspect: None when absent
Api = Callable[[], Any]  # the docker-py client, connected on first use (archives need it)


@dataclass(frozen=True)
class Activated:
    reference: str  # what the run unit starts: repo@sha256:... or the image ID
    digest: str | None
    state: state.AppState  # as saved


def locate(app: AppConfig, image_id: str, label: str, *, inspect: Inspect,
           api: Api) -> LocalImage | None:
    """The image with this ID, present locally or loaded from its rollback archive;
    None when neither (a broken archive is logged, and the caller tries another or says
    why). The app's env file, state and lock are not touched."""
    image = inspect(image_id)
    if image is not None or not app.pull.archive:
        return image
    from . import archive

    try:
        if not archive.load(api(), app.name, image_id):
            return None
    except Exception as e:  # a broken archive or no daemon: not this image, say why
        log.warning("cannot load the archive of %s: %s", label, e)
        return None
    log.warning("loaded %s from its rollback archive", label)
    return inspect(image_id)


def activate(app: AppConfig, st: state.AppState, ref: ImageRef, image: LocalImage, *,
             digest: str | None = None, failure: Failure | None = None,
             lock_source: str | None = None, api: Api | None = None,
             engine: Engine | None = None) -> Activated:
    """Make `image` (already checked by the caller) the one the run unit starts.

    `ref` is what was pulled (it names the repository the digest is looked up under);
    `digest` is the registry digest when the caller knows it better than the image does
    (one loaded from its archive has no RepoDigests). `failure` is recorded as the last
    failure (a fallback); `lock_source` also pins the digest in APP.lock.toml; `api`
    keeps a rollback archive when [pull] archive is on; `engine` tags the kept images so
    that `docker image prune` leaves them (see hold_history).
    """
    reference = image.run_reference(ref)
    digest = digest or image.digest_for(ref)
    if lock_source is not None:
        # The lock first: it is the lasting decision, and if a later write fails a rerun
        # completes it, where the other order would be undone by the next reboot.
        if digest:
            from . import pinning

            pinning.write(app, digest, lock_source)
        else:
            log.warning("%s has no registry digest; the next pull follows %s again",
                        reference, app.image.ref)
    state.write_env_file(app.name, reference)
    before = st
    st = state.record_ready(st, str(app.image.ref), reference, digest, image.id,
                            app.pull.keep)
    if failure is not None:
        st = state.record_failure(st, str(failure.cls), failure.message,
                                  int(failure.exit_code))
    if api is not None:
        keep_archive(app, st, image.id, api)
    state.save(st)
    if engine is not None:
        hold_history(app.name, before, st, image, engine)
    return Activated(reference, digest, st)


# An image pulled by digest, or one whose tag moved on to a newer digest, has no tag
# left: dockerd 20.10 counts it as dangling, and a routine `docker image prune` deletes
# the very images rollback, update and the fallback need. Each image of an app's history
# (and its prefetched one) therefore carries a tag of pullunit's own while it is kept.
KEEP_REPO = "localhost/pullunit-keep"


def keep_tag(app: str, image_id: str) -> str:
    """KEEP_REPO's tag for one image of one app (a tag is at most 128 characters, an app
    name up to 223: the app goes in as a checksum; two apps may keep the same image)."""
    import zlib

    return f"{zlib.crc32(app.encode()):08x}-{image_id.removeprefix('sha256:')}"


def _kept(st: state.AppState) -> set[str]:
    ids = {e.image_id for e in st.history}
    if st.current is not None:
        ids.add(st.current.image_id)
    if st.prefetched is not None:
        ids.add(st.prefetched.image_id)
    return ids


def hold_history(app: str, before: state.AppState, after: state.AppState, image: LocalImage,
                 engine: Engine) -> None:
    """Tag `image` (now kept) unless it has the tag already (a warm start asks nothing),
    and untag the images that left the history. Failing is only a warning: the app runs."""
    from .errors import PullunitError

    try:
        tag = keep_tag(app, image.id)
        if f"{KEEP_REPO}:{tag}" not in image.repo_tags:
            engine.hold(image.id, KEEP_REPO, tag)
        for gone in sorted(_kept(before) - _kept(after)):
            engine.release(f"{KEEP_REPO}:{keep_tag(app, gone)}")
    except PullunitError as e:
        log.warning("cannot tag the kept images of %s (docker image prune may remove them): "
                    "%s", app, e.message)


def keep_archive(app: AppConfig, st: state.AppState, image_id: str, api: Api) -> None:
    """Keep a `docker save` of each kept image; drop archives that left the history."""
    if not app.pull.archive:
        return
    from . import archive

    try:
        path = archive.save(api(), app.name, image_id)
        log.info("rollback archive: %s", path)
        keep = {e.image_id for e in st.history}
        if st.prefetched is not None:
            keep.add(st.prefetched.image_id)
        archive.prune(app.name, keep)
    except Exception as e:  # the app can run without its archive; say so and go on
        log.warning("cannot write the rollback archive of %s: %s", image_id[:19], e)
