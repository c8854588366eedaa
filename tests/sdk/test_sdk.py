"""scm-sim driven by Huawei's official Python SDK (huaweicloudsdkscm).

Every call goes through the SDK's ScmClient with AK/SK credentials, so the simulator must verify the SDK's own
SDK-HMAC-SHA256 signature, and every answer must parse into the SDK's models with nothing left over: a key the model
does not know would be dropped silently by the SDK, which is how a misspelt field in the simulator would go unnoticed.
Nothing may be missing either: every attribute of the model (and of its nested models) must be in the answer, except
the few real SCM leaves out (MAY_BE_ABSENT), or a client could rely on a field the simulator never sends.
A failure here means the simulator is unfaithful; fix the simulator, not this test. run.sh starts the simulator and
sets SCM_SIM_URL.
"""

import hashlib
import json
import os
import pathlib
import re
import urllib.request

import huaweicloudsdkscm.v3 as scm
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials, GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region

SIM_URL = os.environ["SCM_SIM_URL"]
SIM_LIB = pathlib.Path(__file__).resolve().parents[2] / "scm-sim" / "src" / "lib.rs"


def rust_strings(name):
    """The string literals of `pub const NAME` in scm-sim's lib.rs, so the demo values have one source."""
    match = re.search(rf"pub const {name}: [^=]+= ([^;]+);", SIM_LIB.read_text())
    assert match, f"{name} not found in {SIM_LIB}"
    return re.findall(r'"([^"]*)"', match.group(1))


ACCESS_KEY = rust_strings("DEMO_ACCESS_KEY")[0]
SECRET_KEY = rust_strings("DEMO_SECRET_KEY")[0]
CERT, OTHER_CERT, THIRD_CERT = rust_strings("DEMO_CERTIFICATES")
# The simulator names its n-th configured certificate's domain certN.example.com.
CERT_DOMAIN = "cert1.example.com"
# An account id; the simulator does not check it, the SDK only sends it (X-Domain-Id).
DOMAIN_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"

# A self-signed certificate for sdk.example.com, valid until 2126, to import; its private key was thrown away (the
# simulator reads the certificate, as SCM does, but never the key).
SDK_CERT = """-----BEGIN CERTIFICATE-----
MIIBpjCCAU2gAwIBAgIUM4b6OWE/cwL+GBx1hlxcXYT9ZkMwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPc2RrLmV4YW1wbGUuY29tMCAXDTI2MTIwNjA3NTUyMloYDzIx
MjYxMTEyMDc1NTIyWjAaMRgwFgYDVQQDDA9zZGsuZXhhbXBsZS5jb20wWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAATgxFR3x7Cox/n+i9ms0vLzNqQYjd5O210wlygH
m33GOOKnMPiZ+Ok7ZshJtEV8nLkG23vfbj3R9AwDyDNeNHh4o28wbTAdBgNVHQ4E
FgQUkglS+30JiK0zsHpxDOCQIfRjTyMwHwYDVR0jBBgwFoAUkglS+30JiK0zsHpx
DOCQIfRjTyMwDwYDVR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgg9zZGsuZXhhbXBs
ZS5jb20wCgYIKoZIzj0EAwIDRwAwRAIgcLHnE7nj9NxwZ7FuaKr6OhdupIqInFPd
5tXPEieDlFICIGEa3pPXbxhWMvGEDMaZiihbo+9iexKLiatylIIzoi6P
-----END CERTIFICATE-----
"""
PLACEHOLDER_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAplaceholder\n-----END PRIVATE KEY-----\n"


def admin(method, path, body=None):
    """The simulator's unauthenticated /sim/ control API: (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(SIM_URL + path, data=data, method=method)
    # No proxy for loopback, whatever the environment says.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        text = response.read()
        return response.status, (json.loads(text) if text else None)


def calls():
    return admin("GET", "/sim/calls")[1]


@pytest.fixture(autouse=True)
def fresh_simulator():
    """Each test starts from a simulator without calls, bindings, copies or queued failures."""
    assert admin("POST", "/sim/reset")[0] == 204
    yield


def scm_client(credentials, region=None):
    """An SDK client of the simulator: by endpoint, or by `region` (whose endpoint is the simulator's), the only way
    the SDK resolves a missing domain id."""
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (5, 10)
    builder = scm.ScmClient.new_builder().with_credentials(credentials).with_http_config(config)
    builder = builder.with_region(Region(region, SIM_URL)) if region else builder.with_endpoint(SIM_URL)
    return builder.build()


@pytest.fixture
def client():
    return scm_client(GlobalCredentials(ACCESS_KEY, SECRET_KEY, DOMAIN_ID))


def unknown_keys(data, model, path="$"):
    """Keys of `data` (and of nested objects) that the SDK model `model` (a class name) has no attribute for."""
    cls = getattr(scm, model)
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    unknown = []
    for key, value in data.items():
        attr = by_key.get(key)
        if attr is None:
            unknown.append(f"{path}.{key}")
            continue
        kind = cls.openapi_types[attr]
        inner = re.fullmatch(r"list\[(\w+)\]", kind)
        if inner and hasattr(scm, inner.group(1)) and isinstance(value, list):
            for n, item in enumerate(value):
                unknown += unknown_keys(item, inner.group(1), f"{path}.{key}[{n}]")
        elif hasattr(scm, kind) and isinstance(value, dict):
            unknown += unknown_keys(value, kind, f"{path}.{key}")
    return unknown


# (model, key) pairs an answer may leave out because real SCM does: everything else the SDK's models have must be sent.
MAY_BE_ABSENT = {
    # Applicant details exist only for certificates applied for through SCM (OV/EV); Huawei's example answer of
    # ShowCertificate (support.huaweicloud.com/api-ccm/ShowCertificate_0.html) has no application_info.
    ("ShowCertificateResponse", "application_info"),
}


def nested_model(kind):
    """The SDK model class name inside an openapi type (`Foo` or `list[Foo]`), or None for plain types."""
    inner = re.fullmatch(r"list\[(\w+)\]", kind)
    name = inner.group(1) if inner else kind
    return name if hasattr(scm, name) else None


def missing_keys(data, model, path="$"):
    """Attributes of the SDK model `model` (and of nested models) that `data` leaves out, outside MAY_BE_ABSENT."""
    cls = getattr(scm, model)
    missing = []
    for attr, kind in cls.openapi_types.items():
        key = cls.attribute_map[attr]
        if key not in data:
            if (model, key) not in MAY_BE_ABSENT:
                missing.append(f"{path}.{key}")
            continue
        value, inner = data[key], nested_model(kind)
        if inner is None:
            continue
        if kind.startswith("list[") and isinstance(value, list):
            for n, item in enumerate(value):
                missing += missing_keys(item, inner, f"{path}.{key}[{n}]")
        elif isinstance(value, dict):
            missing += missing_keys(value, inner, f"{path}.{key}")
    return missing


def raw_answer(response):
    """The answer's JSON as the simulator sent it, checked to have exactly the keys of the SDK's response model: none
    it would drop, none it has left out."""
    data = json.loads(response.raw_content)
    model = type(response).__name__
    assert unknown_keys(data, model) == []
    assert missing_keys(data, model) == []
    return data


def test_the_model_check_finds_missing_keys():
    # The check itself: a left-out field is found at any depth, an allowed one is not.
    answer = {"results": [{"certificate_id": CERT, "total_num": 0, "deployed_resources": [
        {"service": "ELB", "resource_num": 1, "resource_location": "region",
         "region_resources": [{"region_id": "cn-north-4", "resources": [{"resource_id": "elb-a"}]}]},
    ]}]}
    assert missing_keys(answer, "ListDeployedResourcesResponse") == [
        "$.results[0].deployed_resources[0].region_resources[0].is_error",
        "$.results[0].deployed_resources[0].region_resources[0].resources[0].resource_name",
    ]
    shown = dict.fromkeys(scm.ShowCertificateResponse.attribute_map.values())
    del shown["application_info"]
    assert missing_keys(shown, "ShowCertificateResponse") == []
    del shown["fingerprint"]
    assert missing_keys(shown, "ShowCertificateResponse") == ["$.fingerprint"]


def test_the_scm_client_takes_global_credentials_only():
    # Why the client below uses GlobalCredentials (X-Domain-Id): the Python ScmClient refuses BasicCredentials.
    with pytest.raises(TypeError, match="GlobalCredentials"):
        scm_client(BasicCredentials(ACCESS_KEY, SECRET_KEY, "0123456789abcdef0123456789abcdef"))


def test_the_simulator_verifies_the_sdk_signature(client):
    answer = client.list_certificates(scm.ListCertificatesRequest(limit=10))
    assert answer.status_code == 200
    (call,) = calls()
    assert call["status"] == 200
    assert call["token_sha256"] is None
    assert call["access_key_sha256"] == hashlib.sha256(ACCESS_KEY.encode()).hexdigest()
    # The Python SDK signs every header it sets, the account id included.
    assert call["signed_headers"].split(";") == ["content-type", "host", "user-agent", "x-domain-id", "x-sdk-date"]

    wrong = scm_client(GlobalCredentials(ACCESS_KEY, SECRET_KEY + "x", DOMAIN_ID))
    with pytest.raises(ClientRequestException) as refused:
        wrong.list_certificates(scm.ListCertificatesRequest())
    assert (refused.value.status_code, refused.value.error_code) == (401, "APIGW.0301")
    assert refused.value.request_id == calls()[-1]["request_id"]


def test_without_a_domain_id_the_sdk_asks_iam_once_and_sends_what_it_answered():
    """What the operator copies: GlobalCredentials without a domain id ask IAM's GET /v3/auth/domains, signed with the
    same key and without a scope header, take domains[0].id, cache it per access key, and sign every SCM call with it
    as X-Domain-Id. The simulator serves that IAM call and refuses an AK/SK SCM call with no scope header, which is
    what the SDK sends when it is built with an endpoint only (it resolves the domain only for a region)."""
    # Another account id than DOMAIN_ID, so the header can only have come from IAM's answer.
    account = "5e1f0c0ffee0c0ffee0c0ffee0c0ffee"
    assert admin("PUT", "/sim/domains", {ACCESS_KEY: account})[0] == 204

    unscoped = scm_client(GlobalCredentials(ACCESS_KEY, SECRET_KEY))
    with pytest.raises(ClientRequestException) as refused:
        unscoped.list_certificates(scm.ListCertificatesRequest(limit=10))
    assert (refused.value.status_code, refused.value.error_code) == (401, "APIGW.0301")
    assert "X-Domain-Id" in refused.value.error_msg
    assert "x-domain-id" not in calls()[-1]["signed_headers"].split(";")

    credentials = GlobalCredentials(ACCESS_KEY, SECRET_KEY).with_iam_endpoint(SIM_URL)
    client = scm_client(credentials, region="sim-region-1")
    assert client.list_certificates(scm.ListCertificatesRequest(limit=10)).status_code == 200
    # A second client with the same access key: the SDK's cache answers, IAM is not asked again.
    again = scm_client(GlobalCredentials(ACCESS_KEY, SECRET_KEY).with_iam_endpoint(SIM_URL), region="sim-region-1")
    assert again.list_certificates(scm.ListCertificatesRequest(limit=10)).status_code == 200

    iam = [c for c in calls() if c["path"] == "/v3/auth/domains"]
    assert len(iam) == 1, iam
    assert (iam[0]["method"], iam[0]["status"], iam[0]["domain_id"], iam[0]["project_id"]) == ("GET", 200, None, None)
    assert iam[0]["access_key_sha256"] == hashlib.sha256(ACCESS_KEY.encode()).hexdigest()
    assert "x-domain-id" not in iam[0]["signed_headers"].split(";")
    listed = [c for c in calls() if c["path"] == "/v3/scm/certificates" and c["status"] == 200]
    assert [c["domain_id"] for c in listed] == [account, account]
    assert all("x-domain-id" in c["signed_headers"].split(";") for c in listed)


def test_push(client):
    answer = client.push_certificate(
        scm.PushCertificateRequest(
            certificate_id=CERT,
            body=scm.PushCertificateRequestBody(target_project="ap-southeast-1", target_service="WAF"),
        )
    )
    assert isinstance(answer, scm.PushCertificateResponse)
    assert answer.status_code == 204
    (call,) = calls()
    assert (call["path"], call["body"]) == (
        f"/v3/scm/certificates/{CERT}/push",
        {"target_project": "ap-southeast-1", "target_service": "WAF"},
    )


def test_batch_push_reports_each_region(client):
    assert admin("POST", "/sim/failing-regions", {"region": "cn-east-3"})[0] == 204
    answer = client.batch_push_certificate(
        scm.BatchPushCertificateRequest(
            certificate_id=CERT,
            body=scm.BatchPushCertificateRequestBody(
                target_projects=["ap-southeast-1", "cn-east-3", "cn-north-4"], target_service="ELB"
            ),
        )
    )
    assert answer.status_code == 200
    raw_answer(answer)
    results = answer.results
    assert all(isinstance(r, scm.BatchPushCertificateResponseBodyResults) for r in results)
    assert [(r.project_name, r.message) for r in results] == [
        ("ap-southeast-1", "success"),
        ("cn-east-3", "System busy, please try again later."),
        ("cn-north-4", "success"),
    ]
    assert results[1].cert_id == ""
    copy_ids = [results[0].cert_id, results[2].cert_id]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in copy_ids) and copy_ids[0] != copy_ids[1]
    _, copies = admin("GET", "/sim/copies")
    assert [(c["project"], c["copy_id"]) for c in copies] == [("ap-southeast-1", copy_ids[0]), ("cn-north-4", copy_ids[1])]


def test_deploy_reports_failed_resources_and_binds_the_others(client):
    assert admin("POST", "/sim/deploy-failures", {"resource": "elb-b", "failure_info": "ELB.8902"})[0] == 204

    def deploy(service, resources, project=None):
        return client.deploy_certificate(
            scm.DeployCertificateRequest(
                certificate_id=CERT,
                body=scm.DeployCertificateRequestBody(
                    project_name=project, service_name=service, resources=resources
                ),
            )
        )

    elb = deploy("ELB", [scm.DeployedResource(id="elb-a"), scm.DeployedResource(id="elb-b")], "cn-north-4")
    assert elb.status_code == 200
    raw_answer(elb)
    (failure,) = elb.failure_list
    assert isinstance(failure, scm.FaiureResource)
    assert (failure.resource, failure.failure_info) == ("elb-b", "ELB.8902")

    waf = deploy(
        "WAF",
        [scm.DeployedResource(id="waf-1", type="premium", enterprise_project_id="0")],
        "cn-north-4",
    )
    cdn = deploy("CDN", [scm.DeployedResource(domain_name=CERT_DOMAIN), scm.DeployedResource(domain_name="other.example")])
    assert waf.failure_list == []
    assert [(f.resource, f.failure_info) for f in cdn.failure_list] == [("other.example", "CDN.0005")]
    raw_answer(cdn)
    # The SDK leaves unset fields out of the body.
    assert calls()[-1]["body"] == {
        "service_name": "CDN",
        "resources": [{"domain_name": CERT_DOMAIN}, {"domain_name": "other.example"}],
    }
    _, deployments = admin("GET", "/sim/deployments")
    assert [(d["service"], d["project"], d["resource"]) for d in deployments] == [
        ("CDN", "", CERT_DOMAIN),
        ("ELB", "cn-north-4", "elb-a"),
        ("WAF", "cn-north-4", "waf-1"),
    ]


def test_deployed_resources_parse_into_the_sdk_models(client):
    deployed = client.deploy_certificate(
        scm.DeployCertificateRequest(
            certificate_id=CERT,
            body=scm.DeployCertificateRequestBody(
                project_name="ap-southeast-1",
                service_name="ELB",
                resources=[scm.DeployedResource(id="elb-a"), scm.DeployedResource(id="elb-b")],
            ),
        )
    )
    assert deployed.failure_list == []
    in_use = {"certificate_id": CERT, "service": "CDN", "region": "global", "resource_id": CERT_DOMAIN}
    assert admin("POST", "/sim/in-use", in_use)[0] == 204

    answer = client.list_deployed_resources(
        scm.ListDeployedResourcesRequest(
            body=scm.ListDeployedResourcesRequestBody(certificate_ids=[CERT, OTHER_CERT], service_names=["ALL"])
        )
    )
    assert answer.status_code == 200
    raw_answer(answer)
    used, unused = answer.results
    assert isinstance(used, scm.ResultDetail)
    assert (used.certificate_id, used.total_num) == (CERT, 3)
    assert (unused.certificate_id, unused.total_num, unused.deployed_resources) == (OTHER_CERT, 0, [])
    cdn, elb = used.deployed_resources
    assert isinstance(elb, scm.DeployedResourceDetail)
    assert (cdn.service, cdn.resource_num, elb.service, elb.resource_num) == ("CDN", 1, "ELB", 2)
    (region,) = elb.region_resources
    assert isinstance(region, scm.RegionResourceDetail)
    assert (region.region_id, region.is_error) == ("ap-southeast-1", False)
    assert [(r.resource_id, r.resource_name) for r in region.resources] == [("elb-a", "elb-a"), ("elb-b", "elb-b")]
    assert all(isinstance(r, scm.ResourceDetail) for r in region.resources)
    assert cdn.region_resources[0].region_id == "global"

    only_waf = client.list_deployed_resources(
        scm.ListDeployedResourcesRequest(
            body=scm.ListDeployedResourcesRequestBody(certificate_ids=[CERT], service_names=["WAF"])
        )
    )
    assert (only_waf.results[0].total_num, only_waf.results[0].deployed_resources) == (0, [])


def test_import_show_list_and_delete(client):
    imported = client.import_certificate(
        scm.ImportCertificateRequest(
            body=scm.ImportCertificateRequestBody(
                name="sdk-cert", certificate=SDK_CERT, private_key=PLACEHOLDER_KEY
            )
        )
    )
    raw_answer(imported)
    certificate_id = imported.certificate_id
    assert re.fullmatch(r"scs\d{13}", certificate_id)

    shown = client.show_certificate(scm.ShowCertificateRequest(certificate_id=certificate_id))
    raw_answer(shown)
    assert (shown.id, shown.name, shown.status, shown.domain) == (certificate_id, "sdk-cert", "UPLOAD", "sdk.example.com")
    assert shown.not_after.startswith("2126-11-12 ")
    assert shown.signature_algorithm

    listed = client.list_certificates(scm.ListCertificatesRequest(limit=10, content="sdk-cert"))
    raw_answer(listed)
    assert listed.total_count == 1
    (entry,) = listed.certificates
    assert isinstance(entry, scm.CertificateDetail)
    assert (entry.id, entry.domain, entry.status) == (certificate_id, "sdk.example.com", "UPLOAD")
    assert entry.signature_algorithm and entry.deploy_support is True
    everything = client.list_certificates(scm.ListCertificatesRequest(limit=50, sort_dir="ASC", sort_key="certUpdateTime"))
    assert [c.id for c in everything.certificates] == [CERT, OTHER_CERT, THIRD_CERT, certificate_id]

    deleted = client.delete_certificate(scm.DeleteCertificateRequest(certificate_id=certificate_id))
    assert deleted.status_code == 204
    with pytest.raises(ClientRequestException) as gone:
        client.show_certificate(scm.ShowCertificateRequest(certificate_id=certificate_id))
    assert (gone.value.status_code, gone.value.error_code, gone.value.error_msg) == (
        404,
        "SCM.0021",
        "certificate not exist",
    )
    # The private key is never recorded.
    assert all("placeholder" not in json.dumps(c["body"]) for c in calls())


def test_refusals_reach_the_sdk_as_its_exceptions(client):
    with pytest.raises(ClientRequestException) as refused:
        client.deploy_certificate(
            scm.DeployCertificateRequest(
                certificate_id=CERT,
                body=scm.DeployCertificateRequestBody(
                    project_name="cn-north-4",
                    service_name="WAF",
                    # No type.
                    resources=[scm.DeployedResource(id="waf-1", enterprise_project_id="0")],
                ),
            )
        )
    assert (refused.value.status_code, refused.value.error_code) == (400, "SCM.0005")
    assert refused.value.request_id == calls()[-1]["request_id"]
    with pytest.raises(ClientRequestException) as unknown:
        client.batch_push_certificate(
            scm.BatchPushCertificateRequest(
                certificate_id="scs0000000000000",
                body=scm.BatchPushCertificateRequestBody(target_projects=["cn-north-4"], target_service="ELB"),
            )
        )
    assert (unknown.value.status_code, unknown.value.error_code) == (404, "SCM.0021")
    with pytest.raises(ClientRequestException) as too_many:
        client.list_deployed_resources(
            scm.ListDeployedResourcesRequest(
                body=scm.ListDeployedResourcesRequestBody(certificate_ids=[CERT] * 51, service_names=["ALL"])
            )
        )
    assert (too_many.value.status_code, too_many.value.error_code) == (400, "SCM.0005")
    _, deployments = admin("GET", "/sim/deployments")
    assert deployments == []


def test_a_waf_deploy_sends_its_enterprise_project(client):
    def deploy(resource):
        return client.deploy_certificate(
            scm.DeployCertificateRequest(
                certificate_id=CERT,
                body=scm.DeployCertificateRequestBody(
                    project_name="cn-north-4", service_name="WAF", resources=[resource]
                ),
            )
        )

    # Huawei's API reference makes enterprise_project_id mandatory for WAF resources.
    with pytest.raises(ClientRequestException) as refused:
        deploy(scm.DeployedResource(id="waf-1", type="cloud"))
    assert (refused.value.status_code, refused.value.error_code) == (400, "SCM.0005")
    deployed = deploy(scm.DeployedResource(id="waf-1", type="cloud", enterprise_project_id="0"))
    assert deployed.status_code == 200
    raw_answer(deployed)
    assert deployed.failure_list == []
    assert calls()[-1]["body"] == {
        "project_name": "cn-north-4",
        "service_name": "WAF",
        "resources": [{"id": "waf-1", "type": "cloud", "enterprise_project_id": "0"}],
    }
    _, deployments = admin("GET", "/sim/deployments")
    assert [(d["service"], d["project"], d["resource"]) for d in deployments] == [("WAF", "cn-north-4", "waf-1")]


def list_deployed(client, service_names):
    answer = client.list_deployed_resources(
        scm.ListDeployedResourcesRequest(
            body=scm.ListDeployedResourcesRequestBody(certificate_ids=[CERT], service_names=service_names)
        )
    )
    assert answer.status_code == 200
    raw_answer(answer)
    return answer.results[0]


def test_an_unreadable_region_parses_with_is_error(client):
    for region, resource_id in [("ap-southeast-1", "elb-a"), ("cn-east-3", "elb-b")]:
        in_use = {"certificate_id": CERT, "service": "ELB", "region": region, "resource_id": resource_id}
        assert admin("POST", "/sim/in-use", in_use)[0] == 204
    assert admin("POST", "/sim/unreadable-regions", {"region": "cn-east-3"})[0] == 204

    result = list_deployed(client, ["ELB", "WAF"])
    # Only what could be read is counted.
    assert result.total_num == 1
    waf, elb = result.deployed_resources
    assert (waf.service, waf.resource_num, elb.service, elb.resource_num) == ("WAF", 0, "ELB", 1)
    (unreadable,) = waf.region_resources
    assert isinstance(unreadable, scm.RegionResourceDetail)
    assert (unreadable.region_id, unreadable.is_error, unreadable.resources) == ("cn-east-3", True, [])
    assert [(r.region_id, r.is_error, [x.resource_id for x in r.resources]) for r in elb.region_resources] == [
        ("ap-southeast-1", False, ["elb-a"]),
        ("cn-east-3", True, []),
    ]

    assert admin("DELETE", "/sim/unreadable-regions", {"region": "cn-east-3"})[0] == 204
    result = list_deployed(client, ["ALL"])
    assert result.total_num == 2
    (elb,) = result.deployed_resources
    assert [(r.region_id, r.is_error) for r in elb.region_resources] == [("ap-southeast-1", False), ("cn-east-3", False)]


def test_resource_ids_with_names_parse(client):
    in_use = {"certificate_id": CERT, "service": "ELB", "region": "cn-north-4", "resource_id": "elb-a"}
    assert admin("POST", "/sim/in-use", in_use)[0] == 204
    assert admin("PUT", "/sim/resource-id-mode", {"with_name": True})[0] == 204
    (elb,) = list_deployed(client, ["ELB"]).deployed_resources
    (resource,) = elb.region_resources[0].resources
    assert isinstance(resource, scm.ResourceDetail)
    # The SDK model's text: "resource ID : resource name".
    assert (resource.resource_id, resource.resource_name) == ("elb-a:elb-a", "elb-a")
