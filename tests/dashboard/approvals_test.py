"""Drives the dashboard's "Pending approvals" queue (DESIGN §14) in headless Chromium.

Environment: BASE (API URL), SUBMITTER (a token with submit and read, no approve), APPROVER
(a token with approve and read), SHOTS (folder for screenshots). Prints one line per step;
exits non-zero on the first failure.
"""
import json
import os
import shutil
import sys
import tempfile
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, SUBMITTER, APPROVER, SHOTS = (os.environ[k] for k in ("BASE", "SUBMITTER", "APPROVER", "SHOTS"))
os.makedirs(SHOTS, exist_ok=True)


def step(msg):
    print("step:", msg, flush=True)


def call(method, path, token, body=None):
    req = urllib.request.Request(BASE + path, method=method, headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


profile = tempfile.mkdtemp(prefix="scanq-chromium-")
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1400,1000", "--user-data-dir=" + profile):
    opts.add_argument(a)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
# The list re-renders every 2 s: a lookup may meet an element that was just replaced.
wait = WebDriverWait(driver, 30, poll_frequency=0.2,
                     ignored_exceptions=[StaleElementReferenceException, NoSuchElementException])
try:
    def login(token):
        driver.get(BASE + "/#/")
        box = driver.find_element(By.ID, "token")
        box.clear()
        box.send_keys(token + Keys.TAB)
        wait.until(lambda d: "tenant" in d.find_element(By.ID, "who").text)

    def go(hash_):
        driver.get(BASE + "/" + hash_)

    def click(xpath):
        wait.until(lambda d: d.find_element(By.XPATH, xpath).click() or True)

    for cid in ("ui-approve", "ui-reject"):
        job = call("POST", "/v1/jobs", SUBMITTER, {"tool": "noop", "target": "127.0.0.1", "correlation_id": cid})
        assert job["state"] == "awaiting_approval", job

    # The submitter sees the queue but is offered no decision.
    login(SUBMITTER)
    go("#/approvals")
    wait.until(lambda d: d.find_elements(By.XPATH, "//table[@id='approvals']//tr[td/a[text()='ui-approve']]"))
    assert not driver.find_elements(By.CSS_SELECTOR, "button.approve, button.reject"), "no approve scope, no buttons"
    assert "no approve scope" in driver.find_element(By.ID, "view").text.replace("`", ""), driver.find_element(By.ID, "view").text
    step("a token without approve sees the pending queue without buttons")

    login(APPROVER)
    go("#/approvals")
    row = "//table[@id='approvals']//tr[td/a[text()='{}']]"
    wait.until(lambda d: d.find_elements(By.XPATH, row.format("ui-approve") + "//button[text()='Approve']"))
    assert "submitter" in driver.find_element(By.XPATH, row.format("ui-approve")).text, "who submitted it"
    driver.save_screenshot(os.path.join(SHOTS, "approvals.png"))
    step("the approver sees both jobs with Approve and Reject")

    click(row.format("ui-approve") + "//button[text()='Approve']")
    wait.until(lambda d: call("GET", "/v1/jobs/ui-approve", APPROVER)["state"] == "succeeded")
    wait.until(lambda d: not d.find_elements(By.XPATH, row.format("ui-approve")))
    step("Approve: the job ran to success and left the queue")

    click(row.format("ui-reject") + "//button[text()='Reject']")
    alert = wait.until(lambda d: d.switch_to.alert)
    alert.send_keys("not in this window")
    alert.accept()
    wait.until(lambda d: call("GET", "/v1/jobs/ui-reject", APPROVER)["state"] == "cancelled")
    rejected = call("GET", "/v1/jobs/ui-reject", APPROVER)
    assert "not in this window" in rejected["error"]["message"], rejected
    assert rejected["approval"]["by"] == "approver", rejected
    wait.until(lambda d: d.find_elements(By.ID, "no-approvals"))
    step("Reject asks why: the job is cancelled with the reason")

    go("#/jobs/ui-approve")
    wait.until(lambda d: d.find_element(By.ID, "approval").get_attribute("data-decision") == "approved")
    assert "by approver" in driver.find_element(By.ID, "approval").text
    driver.save_screenshot(os.path.join(SHOTS, "approved.png"))
    step("the job's page shows who approved it")
    print("ok", flush=True)
except Exception as e:  # noqa: BLE001 - report and fail
    driver.save_screenshot(os.path.join(SHOTS, "approvals-failure.png"))
    print("FAILED:", repr(e), flush=True)
    sys.exit(1)
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
