"""Airflow signs people and machines in through Keycloak (its Keycloak auth manager, on the session's stack): a
person of the spec signs in to Airflow's UI on Keycloak's own login page in a real browser, a wrong password stays
there; the sandbox's caller is Airflow's Admin and shows as itself in Airflow's records; another client's
credentials are refused; no static Airflow password is anywhere in the home or in Airflow's processes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psutil
import pytest
import requests

pytestmark = pytest.mark.integration
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PERSON = "ada"  # the bundled spec's person, an Admin


@pytest.fixture
def browser():
    """A browser of its own per test: Keycloak's session cookie would sign the next test in without its form."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "the sign-in tests need Debian's chromium and chromium-driver (.ci/run installs them)"
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = chromium
    d = webdriver.Chrome(service=Service(driver), options=opts)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


def _password(stack) -> str:
    return json.loads((stack.home / "secrets" / "people.json").read_text())[PERSON]


def _sign_in(browser, stack, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(stack.status()["airflow"]["url"] + "/")
    # Airflow's UI sends a browser without a session to its login route, which redirects to Keycloak's form
    WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.ID, "username")))
    browser.find_element(By.ID, "username").send_keys(PERSON)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "kc-login").click()


def test_a_person_signs_in_to_airflows_ui_through_keycloak(browser, stack):
    from selenium.webdriver.support.ui import WebDriverWait

    af = stack.status()["airflow"]
    _sign_in(browser, stack, _password(stack))
    WebDriverWait(browser, 30).until(lambda d: d.current_url.startswith(af["url"]) and "Airflow" in d.title)
    cookies = {c["name"] for c in browser.get_cookies()}
    assert "_token" in cookies, cookies  # Airflow's own session token, minted from Keycloak's


def test_a_wrong_password_stays_on_keycloaks_page(browser, stack):
    from selenium.webdriver.support.ui import WebDriverWait

    _sign_in(browser, stack, "not-" + _password(stack))
    WebDriverWait(browser, 30).until(lambda d: "Invalid username or password." in d.page_source)
    assert browser.current_url.startswith(stack.status()["airflow"]["urls"]["sign-in"])


def _keycloak_token(af: dict, client_id: str, secret: str) -> str:
    r = requests.post(af["urls"]["sign-in"] + "/protocol/openid-connect/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, "scope": "openid"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_the_sandbox_calls_airflow_as_its_own_account(stack):
    af = stack.status()["airflow"]
    token = requests.post(af["url"] + "/auth/token", timeout=30, json={
        "grant_type": JWT_BEARER, "assertion": _keycloak_token(af, af["username"], af["secret"])})
    assert token.status_code == 201, token.text
    h = {"Authorization": f"Bearer {token.json()['access_token']}"}
    run = requests.post(af["url"] + "/api/v2/dags/sandbox_smoke_dev/dagRuns", headers=h, timeout=30,
                        json={"logical_date": None, "note": "test_sign_in"})
    assert run.status_code == 200, run.text
    assert run.json()["triggering_user_name"] == "service-account-sandbox"
    logs = requests.get(af["url"] + "/api/v2/eventLogs", headers=h, timeout=30,
                        params={"dag_id": "sandbox_smoke_dev", "event": "trigger_dag_run",
                                "order_by": "-when", "limit": 5}).json()
    assert "service-account-sandbox" in {e["owner"] for e in logs["event_logs"]}


def test_another_clients_credentials_are_refused(stack):
    af = stack.status()["airflow"]
    secrets = json.loads((stack.home / "secrets" / "clients.json").read_text())
    # a client of the realm that Airflow does not let exchange its token (not in jwt_federated_client_ids)
    assertion = _keycloak_token(af, "reporting", secrets["dev/reporting"])
    r = requests.post(af["url"] + "/auth/token", json={"grant_type": JWT_BEARER, "assertion": assertion}, timeout=30)
    assert r.status_code == 403 and "Invalid Keycloak assertion" in r.text, r.text
    r = requests.post(af["url"] + "/auth/token", timeout=30, json={
        "grant_type": "client_credentials", "client_id": "reporting", "client_secret": secrets["dev/reporting"]})
    assert r.status_code == 403 and "Client credentials authentication failed" in r.text, r.text


def test_no_static_airflow_password_anywhere(stack):
    """Nothing of the simple auth manager is left: no passwords file in the home, no such setting in Airflow."""
    assert not [p for p in Path(stack.home).rglob("passwords.json")]
    secrets = json.loads((stack.home / "secrets.json").read_text())
    assert "airflow_admin_password" not in secrets
    # the API server's title rewrite blanks what /proc shows of its environment; the other services show theirs
    environs = [e for e in (psutil.Process(pid).environ() for pid in stack.status()["airflow"]["pids"]) if e]
    assert len(environs) >= 3
    for env in environs:
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("KeycloakAuthManager")
        assert not [k for k in env if "SIMPLE_AUTH_MANAGER" in k or "PASSWORD" in k]
