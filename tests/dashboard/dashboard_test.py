"""Drives the dashboard in headless Chromium (selenium + chromedriver) against a live API.

Environment: BASE (API URL), ADMIN and VIEWER (tokens of one tenant: admin, read-only),
SHOTS (folder for screenshots). Prints one line per step; exits non-zero on the first failure.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, ADMIN, VIEWER, SHOTS = (os.environ[k] for k in ("BASE", "ADMIN", "VIEWER", "SHOTS"))
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
# The page re-renders as data arrives: a lookup may meet an element that was just replaced.
wait = WebDriverWait(driver, 30, poll_frequency=0.2,
                     ignored_exceptions=[StaleElementReferenceException, NoSuchElementException])
try:
    def login(token):
        # As a person would: type the token into the box (kept in localStorage) and tab away.
        driver.get(BASE + "/#/")
        box = driver.find_element(By.ID, "token")
        box.clear()
        box.send_keys(token + Keys.TAB)
        wait.until(lambda d: "tenant" in d.find_element(By.ID, "who").text)

    def shot(name):
        driver.save_screenshot(os.path.join(SHOTS, name + ".png"))

    def go(hash_):
        driver.get(BASE + "/" + hash_)

    login(ADMIN)
    wait.until(lambda d: "admin" in d.find_element(By.ID, "who").text)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-tool='fake']"))
    step("overview shows the tool cards")
    shot("overview")

    call("POST", "/v1/jobs", ADMIN, {"tool": "fake", "target": "127.0.0.1", "correlation_id": "ui-run",
                                      "args": "--progress 40 --sleep-ms 60000"})
    go("#/jobs")
    row = "//tr[td/a[text()='ui-run']]"
    wait.until(lambda d: d.find_elements(By.XPATH, row + "[td/span[text()='running']]//progress"))
    step("the submitted job's row appears, running, with a progress bar")
    shot("jobs")

    driver.find_element(By.XPATH, row + "/td/a").click()
    wait.until(lambda d: float(d.find_element(By.ID, "bar").get_attribute("value") or 0) > 0)
    first = wait.until(lambda d: float(d.find_element(By.ID, "bar").get_attribute("value")))
    wait.until(lambda d: float(d.find_element(By.ID, "bar").get_attribute("value")) > first)
    assert "Connect Scan" in driver.find_element(By.ID, "phase").text, driver.find_element(By.ID, "phase").text
    assert driver.find_elements(By.CSS_SELECTOR, "#timeline li"), "no events in the timeline"
    wait.until(lambda d: "taskprogress" in d.find_element(By.ID, "stdout").text)
    step("the detail view's progress bar moves with SSE progress events")
    shot("detail")

    driver.find_element(By.CSS_SELECTOR, "button.cancel").click()
    wait.until(lambda d: d.find_element(By.ID, "state").text == "cancelled")
    assert call("GET", "/v1/jobs/ui-run", ADMIN)["state"] == "cancelled"
    # The state may show (SSE) a moment before the view re-renders with its actions.
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.retry"), "a cancelled job offers retry")
    step("cancel from the UI cancels the running job")
    shot("cancelled")

    # A big scan (issue 21): 16 one-host chunks; the parent's page shows the hosts bar, the
    # chunks by state, and a chunk table of 10 per page; a chunk's page links back.
    call("POST", "/v1/jobs", ADMIN, {"tool": "fake", "target": "127.4.0.0/28", "correlation_id": "ui-big",
                                      "chunk_hosts": 1, "args": "--sleep-ms 2500"})
    go("#/jobs/ui-big")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#chunkbar svg.chunks"))
    first_counts = driver.find_element(By.ID, "chunk-counts").text
    assert "16 chunks" in first_counts, first_counts
    chunk_rows = "#chunk-table tr td:first-child a"
    assert len(driver.find_elements(By.CSS_SELECTOR, chunk_rows)) == 10
    step("a big scan's page shows its chunk bar and the first page of chunks")
    # Live: the tally moves (8 chunks run at once, 2.5 s each) while the page is not re-rendered
    # (a mark on the chunk table survives), i.e. from the parent's SSE progress events.
    driver.execute_script("document.getElementById('chunk-table').dataset.mark = 'first render'")
    live = wait.until(lambda d: d.execute_script(
        "const t = document.getElementById('chunk-table'), c = document.getElementById('chunk-counts');"
        "return t && t.dataset.mark && c.textContent !== arguments[0] ? c.textContent : null;", first_counts))
    assert live != first_counts and "16 chunks" in live, live
    step("the chunk tally moves live with the parent's progress events")
    # The parent's own events move the bars; at the end the page re-renders as succeeded.
    wait.until(lambda d: d.find_element(By.ID, "state").text == "succeeded")
    # The `done` event re-renders the page once more (100 ms later): wait for that render (the
    # mark on the chunk table is gone), so the reads and clicks below do not race it.
    wait.until(lambda d: d.execute_script(
        "const t = document.getElementById('chunk-table'); return t && !t.dataset.mark;"))
    wait.until(lambda d: d.find_element(By.ID, "hosts").text == "16 of 16 hosts done")
    wait.until(lambda d: "succeeded 16" in d.find_element(By.ID, "chunk-counts").text)
    assert driver.find_elements(By.CSS_SELECTOR, "#chunkbar rect.c-succeeded"), "no succeeded segment"
    assert float(driver.find_element(By.ID, "hostbar").get_attribute("value")) == 16
    step("the hosts bar and the chunk tally reach 16 of 16")
    shot("bigscan")
    driver.find_element(By.ID, "chunks-next").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, chunk_rows)) == 6)
    ids = [e.text for e in driver.find_elements(By.CSS_SELECTOR, chunk_rows)]
    assert ids == ["ui-big:%d" % n for n in range(10, 16)], ids
    assert driver.find_elements(By.ID, "chunks-prev") and not driver.find_elements(By.ID, "chunks-next")
    step("the chunk table pages: the second page holds chunks 10 to 15")
    driver.find_element(By.LINK_TEXT, "ui-big:12").click()
    wait.until(lambda d: d.find_elements(By.ID, "parent"))
    assert "127.4.0.12" in driver.find_element(By.ID, "view").text
    shot("chunk")
    driver.find_element(By.ID, "parent").click()
    wait.until(lambda d: d.find_elements(By.ID, "chunkbar"))
    step("a chunk's page links to its parent and back")

    # Zones (issue 22): zone a (127.0.1.0/24) has a worker of its own, zone b (127.0.2.0/24) none.
    call("POST", "/v1/jobs", ADMIN, {"tool": "fake", "target": "127.0.1.5", "correlation_id": "ui-zone-a"})
    call("POST", "/v1/jobs", ADMIN, {"tool": "fake", "target": "127.0.2.5", "correlation_id": "ui-zone-b"})
    call("POST", "/v1/jobs", ADMIN, {"tool": "fake", "target": "127.0.1.8,127.0.9.1", "correlation_id": "ui-span"})
    go("#/jobs")
    zrow = lambda cid: "//tr[td/a[text()='%s']]" % cid
    wait.until(lambda d: d.find_elements(By.XPATH, zrow("ui-zone-a") + "[td/span[text()='succeeded']]/td/span[@data-zone='a']"))
    wait.until(lambda d: d.find_elements(By.XPATH, zrow("ui-zone-b") + "/td/span[@data-zone='b']"))
    wait.until(lambda d: d.find_elements(By.XPATH, zrow("ui-zone-b") + "/td/span[@data-waiting='zone:b']"))
    assert "waiting for a worker of zone b" in driver.find_element(By.XPATH, zrow("ui-zone-b")).text
    step("the jobs table shows each job's zone, and that a job of zone b waits")
    shot("zones")
    go("#/jobs/ui-zone-a")
    wait.until(lambda d: d.find_element(By.ID, "state").text == "succeeded")
    view = driver.find_element(By.ID, "view")
    assert view.find_elements(By.XPATH, "//tr[td[text()='zone']]/td/span[@data-zone='a']"), view.text
    assert view.find_elements(By.XPATH, "//tr[td[text()='worker']]/td[text()='w-zone-a']"), view.text
    step("a job of zone a ran on the worker of zone a, and its page says so")
    go("#/jobs/ui-zone-b")
    waiting = wait.until(lambda d: d.find_element(By.ID, "waiting"))
    assert waiting.get_attribute("data-waiting") == "zone:b", waiting.get_attribute("data-waiting")
    assert "no live worker of zone b serves its tool" in waiting.text, waiting.text
    step("a job of zone b says in words that no worker of zone b serves its tool")
    shot("waiting")
    go("#/jobs/ui-span")
    spans = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#zones span.zone"))
    assert sorted(s.get_attribute("data-zone") for s in spans) == ["a", "default"], [s.text for s in spans]
    chunk_zones = sorted(e.get_attribute("data-zone") for e in driver.find_elements(By.CSS_SELECTOR, "#chunk-table span.zone"))
    assert chunk_zones == ["a", "default"], chunk_zones
    wait.until(lambda d: d.find_element(By.ID, "state").text == "succeeded")
    step("a big scan spanning zones lists its zones, and its chunks run each in its own")
    go("#/workers")
    wait.until(lambda d: d.find_elements(By.XPATH, "//tr[td[text()='w-zone-a']]/td/span[@data-zone='a']"))
    assert driver.find_elements(By.XPATH, "//tr[not(td[text()='w-zone-a'])]/td/span[@data-zone='default']")
    step("the workers table shows each worker's zone")
    go("#/")
    for zone in ("default", "a", "b"):
        wait.until(lambda d: d.find_elements(By.XPATH, "//table[@id='queues']//tr[td[text()='fake']]/td/span[@data-zone='%s']" % zone))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-tool='fake'][data-zone='%s']" % zone))
    depth_b = driver.find_element(By.XPATH, "//table[@id='queues']//tr[td/span[@data-zone='b']]/td[3]").text
    assert depth_b == "1", depth_b
    step("the overview has a row and a card per tool and zone (zone b's depth is 1)")
    shot("queues")

    for page in ("breakers", "workers", "tools", "dead"):
        go("#/" + page)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#view h2"))
        shot(page)
    go("#/workers")
    wait.until(lambda d: d.find_elements(By.XPATH, "//th[text()='capabilities']"))
    caps = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#view span.caps")]
    known = {"raw_sockets", "run_cgroups", "unconfined"}
    assert caps and all(
        c == "none" or set(c.split(", ")) <= known for c in caps
    ), "the worker's capabilities: %s" % caps
    step("the workers table shows each worker's capabilities")
    go("#/breakers")
    wait.until(lambda d: d.find_elements(By.XPATH, "//button[text()='open']"))
    step("admin pages render with their actions")

    login(VIEWER)
    go("#/breakers")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#view h3"))
    assert not driver.find_elements(By.XPATH, "//button[text()='open']"), "a read-only token sees breaker actions"
    go("#/jobs/ui-run")
    wait.until(lambda d: d.find_element(By.ID, "state").text == "cancelled")
    assert not driver.find_elements(By.CSS_SELECTOR, "button.retry"), "a read-only token sees retry"
    step("a read-only token sees no actions")
    shot("viewer")
    # The page is served with a strict Content-Security-Policy (api/src/routes/dashboard.rs):
    # everything above ran under it, and Chromium reported no violation.
    violations = [e for e in driver.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert not violations, "the page breaks its CSP: %s" % violations
    step("the page runs under its Content-Security-Policy")
    print("ok", flush=True)
except Exception:
    print("who:", driver.find_element(By.ID, "who").text, "status:", driver.find_element(By.ID, "status").text, flush=True)
    for entry in driver.get_log("browser"):
        print("browser:", entry, flush=True)
    driver.save_screenshot(os.path.join(SHOTS, "failure.png"))
    raise
finally:
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)
