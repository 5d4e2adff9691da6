"""The web console in a real browser (issue 29): Playwright driving Debian's
Chromium against three real gateways. bank-b's data-protection officer signs in
with a pasted token, sees a pending vertical model with its columns and
receivers, rejects it with a reason the submitter then sees, approves a
differentially private job and watches the budget fall, opens the audit log and
verifies it; an analyst without the approval scope cannot approve; forged and
expired tokens are refused. Every page visited is saved as a screenshot (to
$MPCGATE_SCREENSHOTS where set: the README's pictures come from this run)."""

from __future__ import annotations

import os
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
from idpkit import Provider

from gateway import demo_data
from gateway.api.gateway.v1 import datasets_pb2 as dpb
from gateway.contract import states
from gateway.federation import LocalFederation

pytestmark = pytest.mark.multiprocess

BANKS = demo_data.INSTITUTIONS
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
"""Without the background-networking flags Chromium keeps dialling Google's hosts, which this closed network refuses."""
VERTICAL = {"bank-a": ["income", "debt"], "bank-b": ["age"], "bank-c": ["credit_score", "default"]}
BUDGET = 4.0
if not CHROMIUM.exists() and not os.environ.get("MPCGATE_REQUIRE_BROWSER"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)", allow_module_level=True)


def _policy(approval: int, kinds: list[str], columns: list[str]) -> dpb.Policy:
    policy = dpb.Policy(allowed_parties=BANKS, allowed_job_kinds=kinds, allowed_columns=columns,
                        allowed_result_receivers=["bank-a", "bank-c"], min_rows=10, approval_mode=approval)
    policy.dp_budget.CopyFrom(dpb.PrivacyBudget(epsilon=BUDGET, delta=0.0))
    for column, (lower, upper) in {"income": (0, 300_000), "age": (18, 100)}.items():
        policy.dp_bounds[column].CopyFrom(dpb.ClipBounds(lower=lower, upper=upper))
    return policy


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """bank-b's enterprise identity provider, with the console registered as its client."""
    provider = Provider(tmp_path_factory.mktemp("idp"))
    provider.add_key("r1")
    provider.login = {"client_id": "mpcgate-console", "audience": "bank-b", "kid": "r1",
                      "scp": ["jobs:read", "jobs:approve", "datasets:read", "audit:read"]}
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory, idp: Provider) -> Iterator[LocalFederation]:
    login = (f'[issuers."{idp.url}"]\ndiscovery = true\nscope_claim = "scp"\nca = "{idp.ca}"\n'
             'console_client_id = "mpcgate-console"\n')
    with LocalFederation(tmp_path_factory.mktemp("console"), BANKS, failure_timeout=5.0,
                         party_config={"bank-b": login}) as federation:
        rng = np.random.default_rng(3)
        keys = np.array([f"c{i:05d}" for i in range(1500)])
        loans = demo_data.loans("bank-a", 1500)
        risk = -(loans[:, 3] - loans[:, 3].mean()) / loans[:, 3].std() + rng.normal(0, 1, 1500)
        whole = np.column_stack([loans, risk > np.quantile(risk, 0.7)])  # default: mostly a low credit score
        names = [*demo_data.COLUMNS, "default"]
        for bank in BANKS:
            demo_data.write_csv(federation.data_dir(bank) / "loans.csv", demo_data.loans(bank, 300))
            columns = [names.index(c) for c in VERTICAL[bank]]
            demo_data.write_csv(federation.data_dir(bank) / "customers.csv", whole[:, columns], VERTICAL[bank], key=keys)
        federation.start()
        for bank in BANKS:
            approval = dpb.APPROVAL_MODE_MANUAL if bank == "bank-b" else dpb.APPROVAL_MODE_AUTOMATIC
            with federation.client(bank) as owner:
                owner.register_dataset("loans", "loans.csv", _policy(approval, ["stats.describe"], demo_data.COLUMNS))
                owner.register_dataset("customers", "customers.csv", _policy(
                    approval, ["model.logistic_regression"], VERTICAL[bank]), key_column="customer_id")
        yield federation


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


class Visit:
    """One person's browser at one gateway's console; every page it opens is saved."""

    def __init__(self, browser: Any, fed: LocalFederation, party: str, shots: Path) -> None:
        # the federation's CA is not in Chromium's store here; the certificate itself is checked below
        self.context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.base = fed.console_url(party)
        self.shots = shots
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))

    def sign_in(self, token: str) -> Any:
        self.page.goto(self.base + "/signin")
        self.page.fill("#token", token)
        self.page.click("form.signin button[type=submit]")
        return self.page

    def open(self, path: str, name: str) -> Any:
        self.page.goto(self.base + path)
        self.shot(name)
        return self.page

    def shot(self, name: str) -> None:
        self.shots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        assert self.errors == [], self.errors  # no script failed on the page


@pytest.fixture()
def shots(tmp_path: Path) -> Path:
    return Path(os.environ.get("MPCGATE_SCREENSHOTS") or tmp_path / "screenshots")


def _vertical_model(fed: LocalFederation) -> Any:
    """A credit model on the three banks' customers, the label at bank-c; 600 rows
    held out, so that the lift table's deciles hold enough events to stay apart."""
    with fed.client("bank-a") as client:
        return client.submit("model.logistic_regression", [(b, "customers", c) for b, c in VERTICAL.items()],
                             receivers=["bank-c"], partitioning="vertical", provider="TFP",
                             parameters={"label": "default", "holdout": 0.4}, purpose="credit default model, Q4 review")


def _private_describe(fed: LocalFederation, epsilon: float) -> Any:
    with fed.client("bank-a") as client:
        return client.submit("stats.describe", [(b, "loans", ["income", "age"]) for b in BANKS], receivers=["bank-a"],
                             provider="TFP", parameters={"dp": {"epsilon": epsilon}}, purpose="portfolio overview")


def test_a_dpo_rejects_one_job_approves_another_and_verifies_the_log(fed: LocalFederation, browser: Any,
                                                                     shots: Path) -> None:
    dpo = Visit(browser, fed, "bank-b", shots)
    model = _vertical_model(fed)
    assert model.state == "AWAITING_APPROVAL"
    page = dpo.sign_in(fed.token("bank-b", "dpo"))
    assert page.url.endswith("/approvals")
    dpo.shot("approvals")
    card = page.locator(f"#job-{model.id}")
    text = card.inner_text()
    assert "credit default model, Q4 review" in text and "bank-a-idp/operator" in text
    for bank, columns in VERTICAL.items():  # every dataset and column it reads
        assert f"{bank}: customers: {', '.join(columns)}" in text
    assert "to bank-c" in text and "coefficients" in text  # the receiver, and what it learns, in words
    assert "no training row's leverage above 0.9" in text  # bank-b's own protection

    card.locator("input[name=reason]").fill("the purpose does not name the portfolio")
    card.locator("button.reject").click()
    assert "REJECTED" in page.inner_text(".notice")
    with fed.client("bank-a") as submitter:  # the submitter sees the reason
        seen = submitter.job(model.id).record
        assert states.name(seen.state) == "REJECTED"
        assert "the purpose does not name the portfolio" in seen.error.message and seen.error.party_id == "bank-b"

    before = dpo.open("/datasets/loans", "dataset-before")
    assert before.inner_text("#spent") == "0" and before.inner_text("#left") == "4"
    private = _private_describe(fed, 1.5)
    dpo.open("/approvals", "approvals-dp")
    card = page.locator(f"#job-{private.id}")
    assert "epsilon 1.5 (reserved)" in card.inner_text()  # the budget it would charge, before approval
    submitter_view = Visit(browser, fed, "bank-a", shots)  # the submitter watches the job live (WatchJob)
    submitter_view.sign_in(fed.token("bank-a"))
    live = submitter_view.open(f"/jobs/{private.id}", "job-waiting")
    assert live.inner_text("#state") == "AWAITING_APPROVAL"
    card.locator("button.approve").click()
    assert "QUEUED" in page.inner_text(".notice")
    live.wait_for_selector("table.result", timeout=120_000)  # the events moved it on; at its end the page shows results
    assert live.inner_text("#state") == "SUCCEEDED"
    after = dpo.open("/datasets/loans", "dataset-budget")
    assert after.inner_text("#spent") == "1.5" and after.inner_text("#left") == "2.5"  # the budget fell
    assert private.id in after.inner_text("table.charges") and after.locator("canvas").count() == 1

    audit = dpo.open(f"/audit?subject={private.id}", "audit")
    assert "ApproveJob" in audit.inner_text("table.audit")
    audit.click("form.verify button")
    assert re.match(r"Intact: \d+ entries", audit.inner_text("#verdict")), audit.inner_text("#verdict")
    dpo.shot("audit-verified")

    job = dpo.open(f"/jobs/{private.id}", "job")
    assert "SUCCEEDED" in job.inner_text("#state")
    assert "No result here" in job.inner_text("main")  # bank-b is no receiver
    result = submitter_view.open(f"/jobs/{private.id}", "job-result")
    assert "sum_noise_std" in result.inner_text("main") and result.locator("table.result").count() >= 3
    for _ in range(50):  # the parties' signed records reach the coordinator with their final reports
        if result.locator("table.records tbody tr").count() == len(BANKS):
            break
        result.wait_for_timeout(200)
        result.reload()
    verdicts = result.locator("table.records tbody tr td:nth-child(2)").all_inner_texts()
    assert verdicts == ["verified"] * len(BANKS), verdicts
    assert [row.split("\t")[0] for row in result.locator("table.records tbody tr").all_inner_texts()] == BANKS
    with result.expect_download() as download:
        result.click("text=Download CSV")
    assert download.value.suggested_filename == f"{private.id}.csv"
    rejected = submitter_view.open(f"/jobs/{model.id}", "job-rejected")
    assert "the purpose does not name the portfolio" in rejected.inner_text("#error")


def test_a_policy_edit_shows_its_changes_first_and_is_audited(fed: LocalFederation, browser: Any, shots: Path) -> None:
    dpo = Visit(browser, fed, "bank-b", shots)
    dpo.sign_in(fed.token("bank-b", "dpo"))
    page = dpo.open("/datasets/customers", "dataset")
    editor = page.locator("form.policy-editor textarea")
    text = editor.input_value()
    assert "min_rows = 10" in text and 'approval = "manual"' in text
    editor.fill(text.replace("min_rows = 10", "min_rows = 25").replace("require_purpose = false", "require_purpose = true"))
    page.click("form.policy-editor button[value=preview]")
    changed = {row.locator("th").inner_text(): (row.locator(".before").inner_text(), row.locator(".after").inner_text())
               for row in page.locator(".diff tbody tr").all()}
    assert changed == {"min_rows": ("10", "25"), "require_purpose": ("false", "true")}
    dpo.shot("policy-diff")
    with fed.client("bank-b") as owner:
        assert owner.get_dataset("customers").policy.min_rows == 10  # nothing saved before it is applied
    page.click("form.policy-editor button[value=apply]")
    assert "The policy is saved" in page.inner_text(".notice")
    with fed.client("bank-b") as owner:
        saved = owner.get_dataset("customers").policy
        assert saved.min_rows == 25 and saved.require_purpose
        assert any(e.action == "UpdatePolicy" and e.subject == "customers" and e.actor == "bank-b-idp/dpo"
                   for e in owner.audit.entries(action="UpdatePolicy"))
    page.locator("form.policy-editor textarea").fill("min_rows = -1\n")
    page.click("form.policy-editor button[value=preview]")
    assert "min_rows" in page.inner_text(".refused")  # a bad policy is named, not saved
    reader = Visit(browser, fed, "bank-b", shots)  # datasets:read shows the policy, but applying it needs datasets:write
    reader.sign_in(fed.token("bank-b", "analyst", scopes=("datasets:read",)))
    page = reader.open("/datasets/customers", "dataset-reader")
    editor = page.locator("form.policy-editor textarea")
    editor.fill(editor.input_value().replace("min_rows = 25", "min_rows = 10"))
    page.click("form.policy-editor button[value=preview]")
    page.click("form.policy-editor button[value=apply]")
    assert "needs scope 'datasets:write'" in page.inner_text(".refused")
    with fed.client("bank-b") as owner:
        assert owner.get_dataset("customers").policy.min_rows == 25


def test_a_model_s_page_draws_its_loss_and_ranking_curves(fed: LocalFederation, browser: Any, shots: Path) -> None:
    """The label holder's view of a vertical model it received: the training loss,
    gains, KS and ROC curves (from the released lift table) drawn without a script
    error, beside the tables."""
    model = _vertical_model(fed)
    with fed.client("bank-b") as owner:
        owner.approve(model.id)
    with fed.client("bank-a") as submitter:
        ended = submitter.job(model.id).wait(timeout=300)
        assert ended.state == "SUCCEEDED", ended.record.error
    receiver = Visit(browser, fed, "bank-c", shots)
    receiver.sign_in(fed.token("bank-c"))
    page = receiver.open(f"/jobs/{model.id}", "job-model")
    titles = page.locator("figure.chart figcaption").all_inner_texts()
    assert titles[0] == "training loss by epoch" and titles[1].startswith("cumulative gains")
    assert titles[2].startswith("KS:") and titles[3].startswith("ROC")
    assert page.locator("figure.chart canvas").count() == len(titles) == 4
    page.wait_for_function("document.querySelectorAll('canvas').length === 4 && "
                           "[...document.querySelectorAll('canvas')].every(c => c.width > 0)")
    assert receiver.errors == []
    assert "auc" in page.locator("table.result caption").all_inner_texts()
    auc = float(page.locator("table.result[data-name=auc] td").inner_text())
    assert auc > 0.7, auc  # the label follows the credit score


def test_without_the_approval_scope_the_approve_button_is_refused(fed: LocalFederation, browser: Any,
                                                                   shots: Path) -> None:
    job = _private_describe(fed, 0.5)
    analyst = Visit(browser, fed, "bank-b", shots)
    page = analyst.sign_in(fed.token("bank-b", "analyst", scopes=("jobs:read", "datasets:read")))
    card = page.locator(f"#job-{job.id}")  # jobs:read shows what waits
    card.locator("button.approve").click()
    assert "needs scope 'jobs:approve'" in page.inner_text(".refused")
    analyst.shot("approve-refused")
    with fed.client("bank-b") as owner:
        assert owner.job(job.id).state == "AWAITING_APPROVAL"
        assert any(e.action == "ApproveJob" and e.outcome == "PERMISSION_DENIED"
                   for e in owner.audit.entries(actor="bank-b-idp/analyst"))
    with fed.client("bank-a") as submitter:
        submitter.job(job.id).cancel("test over")


def test_forged_and_expired_tokens_are_refused_at_sign_in(fed: LocalFederation, browser: Any, shots: Path) -> None:
    visitor = Visit(browser, fed, "bank-b", shots)
    genuine = fed.token("bank-b", "dpo")
    header, claims, signature = genuine.split(".")
    forged = jwt.encode({**jwt.decode(genuine, options={"verify_signature": False}), "sub": "root"}, "x" * 32,
                        algorithm="HS256")
    cases = {"expired": fed.token("bank-b", "dpo", ttl_s=-120),
             "tampered": f"{header}.{claims}.{signature[:-4]}AAAA",
             "another issuer": fed.token("bank-a", "dpo"), "HMAC": forged, "garbage": "not a token"}
    for name, token in cases.items():
        page = visitor.sign_in(token)
        assert page.url.endswith("/signin"), name
        assert page.inner_text(".refused").startswith("Refused:"), name
    visitor.shot("signin-refused")
    page = visitor.open("/approvals", "signed-out")  # no session: back to the sign-in page
    assert page.url.endswith("/signin")


def test_a_provider_s_login_page_signs_in_where_the_gateway_names_its_client(fed: LocalFederation, browser: Any,
                                                                             idp: Provider, shots: Path) -> None:
    """OIDC where configured: the authorization code flow with PKCE; the provider's
    token is then checked as a pasted one. A callback is good once, and only for a
    login this console started."""
    visitor = Visit(browser, fed, "bank-b", shots)
    page = visitor.open("/signin", "signin")
    callbacks: list[str] = []
    back = fed.console_url("bank-b") + "/signin/callback"
    page.on("request", lambda request: callbacks.append(request.url) if request.url.startswith(back) else None)
    page.click(f"text=Sign in with {idp.url}")
    page.wait_for_url("**/approvals")
    assert page.inner_text("header .who span") == f"{idp.url}/{idp.user}"
    visitor.shot("approvals-oidc")
    assert len(callbacks) == 1 and "code=" in callbacks[0]
    replay = Visit(browser, fed, "bank-b", shots).page
    replay.goto(callbacks[0])  # the same code and state again: refused, not a second session
    assert "was not started here, was used already" in replay.inner_text(".refused")
    replay.goto(fed.console_url("bank-b") + "/signin/oidc?issuer=https://elsewhere.example")
    assert "no sign-in through 'https://elsewhere.example'" in replay.inner_text(".refused")
    elsewhere = Visit(browser, fed, "bank-a", shots).open("/signin", "signin-bank-a")
    assert elsewhere.locator("text=Sign in with").count() == 0  # bank-a names no provider login


def test_the_console_is_tls_with_the_gateway_s_certificate_and_checks_its_forms(fed: LocalFederation) -> None:
    """Outside the browser: the certificate verifies against the federation's CA
    for the address; a form posted without the session's token is refused; pages
    carry a content security policy that allows no inline script or remote file."""
    context = ssl.create_default_context(cafile=str(fed.pki_dir / "ca.crt"))
    base = fed.console_url("bank-b")
    with urllib.request.urlopen(base + "/signin", context=context) as response:  # verified TLS, hostname included
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    visitor = _session(base, context, fed.token("bank-b", "dpo"))
    with pytest.raises(urllib.error.HTTPError) as refused:
        visitor.open(urllib.request.Request(base + "/audit/verify", data=b"csrf=guess", method="POST"))
    assert refused.value.code == 403 and b"not sent by this console" in refused.value.read()
    with pytest.raises(OSError):  # plain HTTP is not served (the TLS port hangs up)
        urllib.request.urlopen(base.replace("https", "http") + "/signin", timeout=5)


def _session(base: str, context: ssl.SSLContext, token: str) -> urllib.request.OpenerDirector:
    """An opener signed in with `token` (its cookie kept)."""
    import http.cookiejar
    import urllib.parse

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context),
                                         urllib.request.HTTPCookieProcessor(jar))
    with opener.open(base + "/signin", data=urllib.parse.urlencode({"token": token}).encode()) as response:
        assert response.url.endswith("/approvals")
    return opener
