"""Real Docker daemon error texts, observed on this test bed (dockerd 20.10.24 from
Debian 12's docker.io, distribution 2.8 registries, nginx 1.22), for unit tests of
the failure classifier.

MESSAGES maps a pullunit.classify.FailureClass value to the daemon's own words
(``exc.explanation`` of a docker.errors.APIError, or the ``error`` of an in-stream
``{"error": ..., "errorDetail": {"message": ...}}`` message; for daemon_unavailable,
``str(exc)`` of the client-side exception).

OBSERVATIONS has every scenario with how it surfaced through
``docker.APIClient.pull(ref, stream=True, decode=True)``: ``via`` is "exception"
(raised by pull() before the stream starts: exc_class, status_code, str(exc) as
``text``, ``explanation``), "stream" (HTTP 200 and an error message inside the
stream; nothing raised), "stalled" (no error at all: progress just stops) or "ok".
``sdk`` is the docker SDK version; ``text`` of an exception differs between SDK
versions only in the URL part (``http+docker://localhost/v1.41/...``).

Ports and digests are whatever the run used (127.0.0.1:5000 plain registry,
:5001 basic auth, :5002-5006 nginx faults, :5999 nothing listening).
"""

# ruff: noqa: E501  (generated data: the daemon's texts are kept whole, one per line)
from __future__ import annotations

# Kept by hand (`observe --write` keeps everything above the generated part): texts the
# daemon produced that observe.py does not provoke. Same shape as MESSAGES.
KEPT_MESSAGES: dict[str, list[str]] = {
    'dns': [
        # dns_dockerd here (Go's resolver with our stub as the only server)...
        'Get "https://registry.pullunit.test:5000/v2/": dial tcp: lookup registry.pullunit.test: no such host',
        # ...and the same pull on a freshly set-up Debian 12 machine (issue 12): Go names
        # the server it asked, depending on the resolver set-up.
        'Get "https://registry.pullunit.test:5000/v2/": dial tcp: lookup registry.pullunit.test on 127.0.0.1:53: no such host',
    ],
    'not_found': [
        # A manifest 404 whose body is not the registry's JSON (tests/testbed/faultfront.py
        # html404 / empty404): dockerd's own API answers 500 with this text.
        'error parsing HTTP 404 response body: invalid character \'<\' looking for beginning of value: "<html><head><title>404</title></head><body><h1>nothing here</h1></body></html>\\n"',
        'error parsing HTTP 404 response body: unexpected end of JSON input: ""',
        # A blob 404 (faultfront html404/empty404 on blobs), in the stream.
        'unknown blob',
    ],
    'server_error': [
        # A config blob that keeps answering 503 (nginx status fault on blobs).
        'error pulling image configuration: download failed after attempts=6: received unexpected HTTP status: 503 Service Temporarily Unavailable',
    ],
    'corrupt': [
        # faultfront.py "corrupt" on the layer blob, then on the config blob (one byte
        # flipped: the bytes no longer match the digest); in the stream.
        'filesystem layer verification failed for digest sha256:29e2cf5883a0965696a422cf3b017272ea644cbd05c1e50968f5de536e9e976a',
        'error pulling image configuration: image config verification failed for digest sha256:bcffb7bdb0419826f4d6044bf07f955ac36dd476b8d316fbade994269adc7dc3',
        # A layer blob pushed broken (its digest matches its bytes): a truncated gzip,
        # and a gzip magic followed by junk; in the stream.
        'failed to register layer: Error processing tar file(exit status 1): unexpected EOF',
        'failed to register layer: Error processing tar file(exit status 1): archive/tar: invalid tar header',
    ],
}

# --- generated below by `python3 -m tests.testbed observe --write`; do not edit by hand

MESSAGES: dict[str, list[str]] = {
    'daemon_unavailable': [
        "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
        "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
        "('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))",
    ],
    'denied': [
        'Head "http://127.0.0.1:5001/v2/team/app/manifests/1.2.3": no basic auth credentials',
        'unauthorized: authentication required',
    ],
    'disk_full': [
        'write /var/tmp/pullunit-testbed/dockerd-small-hf4_x111/data/tmp/GetImageBlob744330100: no space left on device',
    ],
    'dns': [
        'Get "https://no-such-host.invalid:5000/v2/": dial tcp: lookup no-such-host.invalid: no such host',
    ],
    'not_found': [
        'manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown: manifest unknown',
        'manifest for 127.0.0.1:5000/team/nothere:1 not found: manifest unknown: manifest unknown',
        'manifest for 127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000 not found: manifest unknown: manifest unknown',
    ],
    'platform': [
        'no matching manifest for linux/amd64 in the manifest list entries',
    ],
    'rate_limited': [
        'toomanyrequests: You have reached your pull rate limit. (pullunit test bed)',
        'error parsing HTTP 429 response body: invalid character \'<\' looking for beginning of value: "<html>\\n<head><title>429 Too Many Requests</title></head>\\n<body>\\n<center><h1>429 Too Many Requests</h1></center>\\n<hr><center>nginx</center>\\n</body>\\n</html>\\n"',
    ],
    'server_error': [
        'received unexpected HTTP status: 503 Service Temporarily Unavailable',
        'received unexpected HTTP status: 500 Internal Server Error',
        'received unexpected HTTP status: 502 Bad Gateway',
    ],
    'tls': [
        'Get "https://10.231.0.2:5443/v2/": x509: certificate signed by unknown authority',
    ],
    'unreachable': [
        'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
    ],
}

OBSERVATIONS: list[dict[str, object]] = [
    {
        'failure_class': 'not_found',
        'scenario': 'unknown tag',
        'via': 'exception',
        'exc_class': 'docker.errors.NotFound',
        'status_code': 404,
        'text': '404 Client Error for http+docker://localhost/v1.41/images/create?tag=nope&fromImage=127.0.0.1%3A5000%2Fteam%2Fapp: Not Found ("manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown: manifest unknown")',
        'explanation': 'manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown: manifest unknown',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'not_found',
        'scenario': 'unknown repository',
        'via': 'exception',
        'exc_class': 'docker.errors.NotFound',
        'status_code': 404,
        'text': '404 Client Error for http+docker://localhost/v1.41/images/create?tag=1&fromImage=127.0.0.1%3A5000%2Fteam%2Fnothere: Not Found ("manifest for 127.0.0.1:5000/team/nothere:1 not found: manifest unknown: manifest unknown")',
        'explanation': 'manifest for 127.0.0.1:5000/team/nothere:1 not found: manifest unknown: manifest unknown',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'not_found',
        'scenario': 'unknown digest',
        'via': 'exception',
        'exc_class': 'docker.errors.NotFound',
        'status_code': 404,
        'text': '404 Client Error for http+docker://localhost/v1.41/images/create?tag=sha256%3A0000000000000000000000000000000000000000000000000000000000000000&fromImage=127.0.0.1%3A5000%2Fteam%2Fapp: Not Found ("manifest for 127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000 not found: manifest unknown: manifest unknown")',
        'explanation': 'manifest for 127.0.0.1:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000 not found: manifest unknown: manifest unknown',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'unreachable',
        'scenario': 'connection refused',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5999%2Fteam%2Fapp: Internal Server Error ("Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused")',
        'explanation': 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'denied',
        'scenario': 'auth registry, no credentials',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5001%2Fteam%2Fapp: Internal Server Error ("Head "http://127.0.0.1:5001/v2/team/app/manifests/1.2.3": no basic auth credentials")',
        'explanation': 'Head "http://127.0.0.1:5001/v2/team/app/manifests/1.2.3": no basic auth credentials',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'denied',
        'scenario': 'auth registry, wrong password',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5001%2Fteam%2Fapp: Internal Server Error ("unauthorized: authentication required")',
        'explanation': 'unauthorized: authentication required',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'denied',
        'scenario': 'auth registry, unknown user',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5001%2Fteam%2Fapp: Internal Server Error ("unauthorized: authentication required")',
        'explanation': 'unauthorized: authentication required',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'platform',
        'scenario': 'manifest list without linux/amd64',
        'via': 'stream',
        'exc_class': None,
        'status_code': None,
        'text': 'no matching manifest for linux/amd64 in the manifest list entries',
        'explanation': 'no matching manifest for linux/amd64 in the manifest list entries',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'platform',
        'scenario': 'single-platform linux/arm64 image (no daemon error)',
        'via': 'ok',
        'exc_class': None,
        'status_code': None,
        'text': 'no error; pulled image has Os=linux Architecture=arm64',
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'platform',
        'scenario': 'platform=linux/s390x for a linux/amd64 image',
        'via': 'ok',
        'exc_class': None,
        'status_code': None,
        'text': None,
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'rate_limited',
        'scenario': '429 with registry JSON body',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5002%2Fteam%2Fapp: Internal Server Error ("toomanyrequests: You have reached your pull rate limit. (pullunit test bed)")',
        'explanation': 'toomanyrequests: You have reached your pull rate limit. (pullunit test bed)',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'rate_limited',
        'scenario': '429 with nginx HTML body',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5003%2Fteam%2Fapp: Internal Server Error ("error parsing HTTP 429 response body: invalid character \'<\' looking for beginning of value: "<html>\\n<head><title>429 Too Many Requests</title></head>\\n<body>\\n<center><h1>429 Too Many Requests</h1></center>\\n<hr><center>nginx</center>\\n</body>\\n</html>\\n"")',
        'explanation': 'error parsing HTTP 429 response body: invalid character \'<\' looking for beginning of value: "<html>\\n<head><title>429 Too Many Requests</title></head>\\n<body>\\n<center><h1>429 Too Many Requests</h1></center>\\n<hr><center>nginx</center>\\n</body>\\n</html>\\n"',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'server_error',
        'scenario': '503 on manifests',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5004%2Fteam%2Fapp: Internal Server Error ("received unexpected HTTP status: 503 Service Temporarily Unavailable")',
        'explanation': 'received unexpected HTTP status: 503 Service Temporarily Unavailable',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'server_error',
        'scenario': '500 on manifests',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5004%2Fteam%2Fapp: Internal Server Error ("received unexpected HTTP status: 500 Internal Server Error")',
        'explanation': 'received unexpected HTTP status: 500 Internal Server Error',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'server_error',
        'scenario': '502 from nginx (upstream down), also on /v2/',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=127.0.0.1%3A5006%2Fteam%2Fapp: Internal Server Error ("received unexpected HTTP status: 502 Bad Gateway")',
        'explanation': 'received unexpected HTTP status: 502 Bad Gateway',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'stalled',
        'scenario': 'blob download at 1 byte/s after 64 KiB',
        'via': 'stalled',
        'exc_class': None,
        'status_code': None,
        'text': 'no pull progress for 3s',
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'tls',
        'scenario': 'self-signed CA, not trusted',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=10.231.0.2%3A5443%2Fteam%2Fapp: Internal Server Error ("Get "https://10.231.0.2:5443/v2/": x509: certificate signed by unknown authority")',
        'explanation': 'Get "https://10.231.0.2:5443/v2/": x509: certificate signed by unknown authority',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'tls',
        'scenario': 'CA in /etc/docker/certs.d/HOST:PORT/ca.crt (success)',
        'via': 'ok',
        'exc_class': None,
        'status_code': None,
        'text': None,
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'disk_full',
        'scenario': '96 MiB image into a 48 MiB data-root',
        'via': 'stream',
        'exc_class': None,
        'status_code': None,
        'text': 'write /var/tmp/pullunit-testbed/dockerd-small-hf4_x111/data/tmp/GetImageBlob744330100: no space left on device',
        'explanation': 'write /var/tmp/pullunit-testbed/dockerd-small-hf4_x111/data/tmp/GetImageBlob744330100: no space left on device',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'dns',
        'scenario': 'NXDOMAIN (.invalid) from the resolver',
        'via': 'exception',
        'exc_class': 'docker.errors.APIError',
        'status_code': 500,
        'text': '500 Server Error for http+docker://localhost/v1.41/images/create?tag=1.2.3&fromImage=no-such-host.invalid%3A5000%2Fteam%2Fapp: Internal Server Error ("Get "https://no-such-host.invalid:5000/v2/": dial tcp: lookup no-such-host.invalid: no such host")',
        'explanation': 'Get "https://no-such-host.invalid:5000/v2/": dial tcp: lookup no-such-host.invalid: no such host',
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'daemon_unavailable',
        'scenario': 'daemon stopped (socket gone), client made before',
        'via': 'exception',
        'exc_class': 'requests.exceptions.ConnectionError',
        'status_code': None,
        'text': "('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'daemon_unavailable',
        'scenario': 'daemon stopped, new client (version=auto)',
        'via': 'exception',
        'exc_class': 'docker.errors.DockerException',
        'status_code': None,
        'text': "Error while fetching server API version: ('Connection aborted.', FileNotFoundError(2, 'No such file or directory'))",
        'explanation': None,
        'sdk': '7.2.0',
    },
    {
        'failure_class': 'daemon_unavailable',
        'scenario': 'socket exists, nobody listens',
        'via': 'exception',
        'exc_class': 'requests.exceptions.ConnectionError',
        'status_code': None,
        'text': "('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))",
        'explanation': None,
        'sdk': '7.2.0',
    },
]
