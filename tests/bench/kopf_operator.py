"""A kopf (Python) operator doing this operator's job, for the comparison in the scale benchmark.

docs/benchmarks.md ("Compared with kopf") has the method and the numbers. scripts/bench.sh installs kopf into a cached
virtualenv (tests/bench/requirements.txt) and tests/bench.rs runs this file as

    python -m kopf run --standalone --namespace NS tests/bench/kopf_operator.py

with SCM_ENDPOINT set to scm-sim's URL and KUBECONFIG to the admin kubeconfig of the test control plane.

What it does, written the way kopf's documentation writes operators: one async handler, on creation and on resume, for
each CertificatePush. It reads the credentials Secret of the object's namespace, POSTs
/v3/scm/certificates/{certificateId}/push with the token as X-Auth-Token, and puts the outcome into `patch.status`:
Ready=True/Pushed with observedGeneration, as the Rust operator writes it. Everything else is kopf's default:
unbounded concurrency (async handlers, no worker limit), its diff-base annotation on the object (a merge PATCH of the
object besides the status PATCH), retries of failed handlers. Like the Rust operator it posts one Event per push
(kopf.info); kopf 1.45.2 posts no Events of its own by default (settings.posting.loggers is False). On resume (a
restart) it pushes only if the status does not show a successful push of the current generation, so it pushes once
per generation like the Rust operator.
"""

import base64
import datetime
import os
import ssl

import aiohttp
import kopf

GROUP, VERSION, PLURAL = "scm.certpush.dev", "v1alpha1", "certificatepushes"
SCM_ENDPOINT = os.environ["SCM_ENDPOINT"].rstrip("/")

# Two connection pools, both unbounded (limit=0), as kopf's own API client: the Kubernetes API (for the Secret) and
# SCM. Created at startup, inside kopf's event loop.
sessions: dict[str, aiohttp.ClientSession] = {}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_):
    # The same kubeconfig kopf logs in with (KUBECONFIG), read by kopf's own minimal kubeconfig login.
    info = kopf.login_with_kubeconfig(settings=settings)
    context: ssl.SSLContext = info.as_ssl_context()
    sessions["kube"] = aiohttp.ClientSession(
        base_url=info.server,
        headers=info.as_http_headers(),
        connector=aiohttp.TCPConnector(limit=0, ssl=context),
    )
    sessions["scm"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


@kopf.on.cleanup()
async def cleanup(**_):
    for session in sessions.values():
        await session.close()


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pushed(status, generation) -> bool:
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return bool(ready) and ready[0].get("status") == "True" and status.get("pushedGeneration") == generation


def ready(patch, generation, value: str, reason: str, message: str) -> None:
    patch.status["observedGeneration"] = generation
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now(),
            "observedGeneration": generation,
        }
    ]


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def push(body, spec, status, meta, namespace, patch, **_):
    generation = meta.get("generation")
    if pushed(status, generation):
        return  # resumed after a restart: this generation is pushed already
    credentials = spec["credentialsRef"]
    async with sessions["kube"].get(f"/api/v1/namespaces/{namespace}/secrets/{credentials['name']}") as response:
        if response.status != 200:
            ready(patch, generation, "False", "CredentialsUnavailable", f"Secret: HTTP {response.status}")
            raise kopf.TemporaryError(f"credentials Secret: HTTP {response.status}", delay=5)
        secret = await response.json()
    token = base64.b64decode(secret["data"][credentials.get("tokenKey", "token")]).decode()

    url = f"{SCM_ENDPOINT}/v3/scm/certificates/{spec['certificateId']}/push"
    body = {"target_service": spec["targetService"], "target_project": spec["targetProject"]}
    attempted = now()
    async with sessions["scm"].post(url, json=body, headers={"X-Auth-Token": token}) as response:
        text = await response.text()
        patch.status["httpStatus"] = response.status
        patch.status["lastAttemptTime"] = attempted
        patch.status["requestId"] = response.headers.get("X-Request-Id")
        if response.status != 204:
            ready(patch, generation, "False", "PushFailed", f"SCM: HTTP {response.status}: {text[:200]}")
            if response.status == 429 or response.status >= 500:
                raise kopf.TemporaryError(f"SCM: HTTP {response.status}", delay=5)
            raise kopf.PermanentError(f"SCM: HTTP {response.status}")
    patch.status["lastPushTime"] = attempted
    patch.status["pushedGeneration"] = generation
    message = f"Pushed {spec['certificateId']} to {spec['targetService']} in {spec['targetProject']}"
    ready(patch, generation, "True", "Pushed", message)
    # One Event per push, as the Rust operator posts. kopf 1.45.2 does not post its handlers' log lines as Events by
    # default (settings.posting.loggers is False), so this is the only Event; kopf posts it in the background.
    kopf.info(body, reason="Pushed", message=message)
