"""The fix for each failure class, from the field guide, made specific to this host.

Pure logic: the caller supplies the facts (which config file held the credentials, where
Docker keeps its data, how much room is left)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .classify import FailureClass
from .reference import ImageRef


@dataclass(frozen=True)
class HintContext:
    ref: ImageRef
    config_path: Path | None = None  # docker config consulted for credentials
    credentials_found: bool = False
    auth_file_configured: bool = False
    running_as_root: bool = True
    data_root: str | None = None
    free_bytes: int | None = None
    platform: str | None = None
    # the docker-credential-NAME that is missing, failed or hung (class `credentials`),
    # and the config key that names it ("credsStore in /root/.docker/config.json")
    credential_helper: str | None = None
    credential_source: str | None = None
    # which of the puller's clocks ended the last attempt ("pull.deadline", ...), if one did
    cut_by: str | None = None


# The Docker engine is not there: the same fix wherever pullunit meets it.
DAEMON_FIX = ("start the Docker engine ('systemctl start docker') and check that DOCKER_HOST, "
              "if set, names it")


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _scheme(ref: ImageRef) -> str:
    """dockerd talks plain HTTP to loopback registries (they are insecure by default)."""
    h = ref.host
    return "http" if h == "localhost" or h.startswith("127.") else "https"


def fix_for(cls: FailureClass, ctx: HintContext) -> str:
    ref, host = ctx.ref, ctx.ref.registry
    url = f"{_scheme(ref)}://{host}/v2/"
    if cls is FailureClass.NOT_FOUND:
        return (f"check that {ref} was pushed to {host} under that exact path and tag "
                f"(a missing namespace is common); list tags with GET {url}"
                f"{ref.remote_path}/tags/list")
    if cls is FailureClass.CREDENTIALS:
        # the helper named when the caller knows it (the puller, doctor); `status` knows
        # only the class, and its message names the helper
        helper = ctx.credential_helper or "docker-credential-NAME"
        named = (f" ({ctx.credential_source})" if ctx.credential_source
                 else " (credsStore/credHelpers of the docker config)")
        server = "https://index.docker.io/v1/" if host == "docker.io" else host
        return (f"this host's credential helper {helper}{named} must answer without a "
                f"prompt: try 'echo {server} | {helper} get' as root (the pull unit runs as "
                "root; install it on root's PATH, unlock its store), or remove it from "
                "credsStore/credHelpers in that docker config, or set image.auth_file to a "
                "config without it; the registry was not asked")
    if cls is FailureClass.DENIED:
        where = str(ctx.config_path) if ctx.config_path else "no docker config"
        who = "root (the pull unit runs as root)" if ctx.running_as_root else "this user"
        if not ctx.credentials_found:
            how = ("set image.auth_file to a docker config.json holding credentials for "
                   f"{host}, or run 'docker login {host}' as {who}")
            return f"no credentials for {host} in {where}; {how}"
        return (f"credentials for {host} from {where} were rejected: check the user/token and "
                f"its pull permission on {ref.remote_path} (e.g. read:packages, "
                "ecr:BatchGetImage, Reporter role)")
    if cls is FailureClass.TLS:
        return (f"the certificate of {host} is not trusted: put its CA in "
                f"/etc/docker/certs.d/{host}/ca.crt (or the system store and restart docker), "
                "check the host clock (timedatectl) and any TLS-inspecting proxy")
    if cls is FailureClass.DNS:
        return (f"{ref.host} does not resolve on this host: check 'getent hosts {ref.host}', "
                "/etc/resolv.conf (dockerd resolves registry names with the host's resolver) "
                "and 'resolvectl status'; pullunit keeps retrying")
    if cls is FailureClass.UNREACHABLE:
        return (f"{host} is not reachable: check 'curl -v {url}', firewall egress, proxies "
                "of docker.service, MTU; pullunit keeps retrying")
    if cls is FailureClass.SERVER_ERROR:
        return (f"{host} is not reachable or failing: it answers with server errors (5xx), "
                "so the registry or a proxy in front of it is failing or overloaded; see "
                f"'curl -v {url}' and the registry's status; pullunit keeps retrying")
    if cls is FailureClass.STALLED and ctx.cut_by:
        return (f"{ctx.cut_by} ended the pull while it was still running: raise it if the "
                f"image is big or the link slow, and check the registry with 'curl -v {url}'")
    if cls is FailureClass.STALLED:
        return (f"{host} (or a proxy in front of it) accepts requests but stops sending: check "
                f"'curl -v {url}' from this host and the proxies of docker.service; for a "
                "transfer that stops midway suspect the MTU or throttling; raise "
                "pull.stall_timeout for very slow links; pullunit keeps retrying")
    if cls is FailureClass.RATE_LIMITED:
        return (f"{host} is rate limiting this host: authenticate (image.auth_file), use a "
                "pull-through cache or mirror, and avoid policy = \"always\" where not needed")
    if cls is FailureClass.DAEMON_UNAVAILABLE:
        return f"{DAEMON_FIX}; pullunit keeps retrying"
    if cls is FailureClass.DISK_FULL:
        room = f" ({_gib(ctx.free_bytes)} free)" if ctx.free_bytes is not None else ""
        root = ctx.data_root or "/var/lib/docker"
        return (f"Docker's data root {root} is full{room}: 'docker system df', then "
                "'docker image prune' (keep your rollback images), check 'df -i' for inodes")
    if cls is FailureClass.PLATFORM:
        return (f"{ref} has no image for {ctx.platform or 'this platform'}: build and push a "
                "multi-arch image, or set image.platform to what the image provides")
    if cls is FailureClass.CORRUPT:
        root = ctx.data_root or "/var/lib/docker"
        return (f"a blob of {ref} did not match its digest (or did not unpack) twice, the "
                "second time pulled from scratch: check this host's disk under "
                f"{root} ('dmesg -T | tail -n 200', 'smartctl -a' on its device); if the "
                "disk is fine, the registry's stored copy or a proxy in between is damaging "
                f"it (fetch the blob from {url} and compare its sha256, push the image "
                f"again); then 'docker image rm -f {ref}' and pull again")
    if cls is FailureClass.DIGEST_MISMATCH:
        return "the registry served a different digest than the one pinned: re-pin or investigate"
    if cls is FailureClass.VERIFY_FAILED:
        return "the new image failed image.verify; the previous good image is kept for rollback"
    return "see 'journalctl -u docker' for the daemon's side; pullunit keeps retrying"
