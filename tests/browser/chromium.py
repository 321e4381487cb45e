"""Headless Chromium from Debian's packages, driven by Selenium, for the browser tests.

The executables are Debian's ``chromium`` and ``chromium-driver`` (tests/run.sh installs them with
apt-get, like redis-server). Selenium is pointed at them explicitly and Selenium Manager is told to
stay offline, so nothing is downloaded at run time. A missing executable is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

#: Where Debian's packages put the browser and its driver.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Bounds on every wait of the driver (seconds).
PAGE_LOAD_TIMEOUT = 20.0
SCRIPT_TIMEOUT = 10.0
WINDOW = (1280, 800)


def executable(path: str, package: str) -> str:
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if found is None:
        raise RuntimeError(
            f"{path} is not installed; the test command installs it (apt-get install {package})"
        )
    return found


def chromium_options(profile: Path) -> Options:
    options = Options()
    options.binary_location = executable(CHROMIUM, "chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",  # containers run as root without user namespaces
        "--disable-dev-shm-usage",  # /dev/shm is tiny in containers
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",  # no update checks, no safe-browsing lists
        "--disable-component-update",
        "--disable-sync",
        "--metrics-recording-only",
        "--password-store=basic",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    options.add_experimental_option(
        "perfLoggingPrefs", {"enableNetwork": True, "enablePage": False}
    )
    return options


def launch() -> tuple[webdriver.Chrome, tempfile.TemporaryDirectory[str]]:
    """A headless Chromium (and its throwaway profile directory: remove it after ``quit``)."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or a driver
    profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
    service = Service(executable_path=executable(CHROMEDRIVER, "chromium-driver"))
    driver = webdriver.Chrome(service=service, options=chromium_options(Path(profile.name)))
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    driver.set_script_timeout(SCRIPT_TIMEOUT)
    return driver, profile
