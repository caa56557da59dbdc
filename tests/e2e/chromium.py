"""Debian's headless Chromium, started one way for every browser test.

The three browser modules once each spelled out the same flags; a flag that one of them
lacked (say, the scrollbar one, which changes measured widths) made the same page measure
differently in two tests. Here they are kept in one place, and a module that cannot find
the browser skips with the same sentence.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Scrollbars take width from the page at some sizes; without them the layout measured
    # is the one a phone or an overlay-scrollbar desktop shows.
    "--hide-scrollbars",
)


def skip_without_chromium() -> None:
    """Skip the calling module (at import) where Debian's browser and driver are missing."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(
            "browser tests need Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver; .ci/run installs them)",
            allow_module_level=True,
        )


@contextmanager
def chromium(profile_prefix: str, *, height: int = 1000, implicit_wait: float = 2) -> Iterator[Any]:
    """A headless Chromium 1280 px wide with a throwaway profile, quit and removed after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix=profile_prefix)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*_FLAGS, f"--user-data-dir={profile}", f"--window-size=1280,{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(implicit_wait)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
