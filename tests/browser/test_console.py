"""The console in a real browser: what an administrator and an auditor do with it.

One axis for the module, with agencies sending each other real signed packages: Văn phòng
Chính phủ (G22) to Nghệ An (H41), which answers with statuses; to Hà Nội (H26), whose push
endpoint answers 503 (its deliveries are retried: a failing endpoint); and to Ninh Bình
(H42), whose endpoint answers 410 Gone until a test brings it back (given up: dead).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from axis import timeutil
from tests.browser.conftest import LiveAxis, live_axis, sign_in
from tests.support.harness import TestAgency
from tests.support.rawsql import raw_sql

G22 = "000.00.00.G22"
H41 = "000.00.00.H41"
H26 = "000.00.00.H26"
H42 = "000.00.00.H42"
DOCS = Path(__file__).resolve().parents[2] / "docs"


class World:
    def __init__(self, live: LiveAxis) -> None:
        self.live = live
        axis = live.axis
        self.sender: TestAgency = live.call(axis.register(G22, name="Văn phòng Chính phủ"))
        self.recipient: TestAgency = live.call(
            axis.register(H41, name="Ủy ban nhân dân tỉnh Nghệ An")
        )
        hanoi = "Ủy ban nhân dân thành phố Hà Nội"
        down, gone = live.receiver_url + "/down", live.receiver_url + "/gone"
        live.call(axis.register(H26, name=hanoi, endpoint=down))
        live.call(axis.register(H42, name="Ủy ban nhân dân tỉnh Ninh Bình", endpoint=gone))
        self.document_ids = []
        for _ in range(24):  # the last two days' mail, for the chart and the deadlines
            status, sent = live.call(axis.send(self.sender, axis.edoc(self.sender, [H41])))
            assert status == 201, sent
        earlier = timeutil.now() - timedelta(hours=47)
        rows = raw_sql(axis.store).execute("SELECT id FROM messages ORDER BY seq").fetchall()
        for n, (mid,) in enumerate(rows):
            at = timeutil.fmt(earlier + timedelta(minutes=int(110 * n - 40 * (n % 3))))
            raw_sql(axis.store).execute(
                "UPDATE messages SET received_at = ? WHERE id = ?", (at, mid)
            )
        for n in range(6):
            to = [H41, H26] if n % 3 == 0 else [H41]
            if n == 4:
                to = [H41, H42]
            status, sent = live.call(axis.send(self.sender, axis.edoc(self.sender, to)))
            assert status == 201, sent
            self.document_ids.append(sent["document_id"])
        self.message = sent["id"]
        self.document_id = sent["document_id"]
        start = timeutil.now() - timedelta(minutes=30)
        received = timeutil.fmt(start - timedelta(minutes=12))  # before its statuses, as in life
        raw_sql(axis.store).execute(
            "UPDATE messages SET received_at = ? WHERE id = ?", (received, self.message)
        )
        for code, minutes in (("01", 0), ("03", 5), ("04", 20)):
            packet = axis.status(
                self.recipient,
                G22,
                self.document_id,
                code,
                timestamp=start + timedelta(minutes=minutes),
            )
            status, answer = live.call(axis.send_status(self.recipient, packet))
            assert status == 201, answer
        self.dead = self.wait_for_dead()

    def wait_for_dead(self) -> str:
        """The delivery to Ninh Bình, given up since its endpoint answered 410 Gone; and
        Hà Nội's deliveries failing (retrying)."""
        store = self.live.axis.store
        deadline = time.monotonic() + 30
        dead = None
        while time.monotonic() < deadline:
            page = self.live.call(
                store.recent_deliveries("dead", organ_id=H42, cursor=None, limit=5)
            )
            failing = self.live.call(store.failing_endpoint(H26))
            if page.items and failing is not None:
                dead = page.items[-1].delivery_id
                break
            time.sleep(0.2)
        assert dead is not None, "no delivery was given up, or none is failing"
        return dead


@pytest.fixture(scope="module")
def world(live: LiveAxis) -> World:
    return World(live)


@pytest.fixture(scope="module")
def admin_token(live: LiveAxis) -> str:
    return live.token("admin")


@pytest.fixture(scope="module")
def auditor_token(live: LiveAxis) -> str:
    return live.token("auditor")


def copy_to_docs(page: Any, name: str) -> None:
    """The two screenshots the README shows, refreshed by AXIS_UPDATE_DOCS=1."""
    import os

    if os.environ.get("AXIS_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        height = min(1400, page.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": 1366, "height": height}
        page.screenshot(path=str(DOCS / name), full_page=True, clip=clip)


def test_the_overview_shows_what_needs_looking_at(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """An administrator signs in to the overview: documents today and per hour (an SVG
    chart), dead deliveries, the failing endpoint, overdue recipients, the chain."""
    sign_in(page, live.url, admin_token)
    assert page.locator("h1").inner_text() == "Tổng quan"
    assert page.locator("svg rect.bar").count() == 48
    cards = page.locator(".cards")
    assert "Văn bản tiếp nhận hôm nay" in cards.inner_text()
    assert page.get_by_role("link", name=re.compile(r"^\d+$")).first.is_visible()
    failing = page.locator("section", has=page.locator("#failing-title"))
    assert H26 in failing.inner_text() and "503" in failing.inner_text()
    assert "Toàn vẹn" in page.locator(".cards").inner_text()
    copy_to_docs(page, "console-overview.png")


def test_an_admin_finds_a_message_by_document_id_and_reads_its_timeline(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """Search by DocumentId, open the message, read each recipient's statuses with times."""
    sign_in(page, live.url, admin_token)
    page.get_by_role("link", name="Gói tin").click()
    page.get_by_label("Mã gói tin hoặc mã văn bản").fill(world.document_id)
    page.get_by_role("button", name="Tìm kiếm").click()
    results = page.locator("table tbody tr")
    assert results.count() == 4  # the document, and the three statuses about it
    document = results.filter(has_text="Văn bản mới")
    document.get_by_role("link", name=world.document_id).click()
    assert page.locator("h1").inner_text() == world.document_id
    timeline = page.locator("article.recipient", has=page.locator(f"h3:has-text('{H41}')"))
    text = timeline.inner_text()
    for label in ("Đã đến (chưa xử lý)", "Đã tiếp nhận, vào sổ", "Đã phân công xử lý"):
        assert label in text
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d", text)
    trail = page.locator("table.trail")
    assert "message_received" in trail.inner_text()
    assert re.search(r"[0-9a-f]{64}", trail.inner_text())
    assert page.get_by_role("link", name="Tải biên nhận có ký số").is_visible()
    copy_to_docs(page, "console-message.png")


def test_suspending_an_agency_refuses_mail_to_it(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """Suspend from the agency's page; a package addressed to it is then refused (422)."""
    sign_in(page, live.url, admin_token)
    page.goto(f"{live.url}/console/agencies/{H41}")
    page.get_by_role("button", name="Tạm ngừng").click()
    assert "Đã đổi trạng thái." in page.locator(".notice").inner_text()
    assert "Tạm ngừng" in page.locator("dl.facts").first.inner_text()
    axis = live.axis
    status, problem = live.call(axis.send(world.sender, axis.edoc(world.sender, [H41])))
    assert status == 422 and problem["code"] == "recipient_unavailable"
    page.get_by_role("button", name="Cho hoạt động trở lại").click()
    status, _ = live.call(axis.send(world.sender, axis.edoc(world.sender, [H41])))
    assert status == 201


def test_redelivering_a_dead_delivery_after_a_confirmation(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """The dead delivery is listed with its last error; redeliver asks first, then the
    endpoint (now up) gets it and the delivery is acknowledged."""
    sign_in(page, live.url, admin_token)
    page.get_by_role("link", name="Chuyển phát").click()
    row = page.locator("tr", has=page.locator(f"code:has-text('{world.dead}')"))
    assert "410" in row.inner_text()
    live.receiver_up = True
    try:
        row.get_by_role("link", name="Gửi lại…").click()
        assert page.locator("h1").inner_text() == "Gửi lại lượt chuyển này?"
        page.get_by_role("button", name="Đồng ý gửi lại").click()
        assert world.dead in page.locator(".notice").inner_text()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            view = live.call(live.axis.store.delivery(world.dead))
            if view is not None and view.state == "acked":
                break
            time.sleep(0.1)
        assert view is not None and view.state == "acked"
    finally:
        live.receiver_up = False


def test_issuing_a_token_shows_it_once_and_revoking_it_refuses_it(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """The new token works at once against the API; once revoked it is refused."""
    sign_in(page, live.url, admin_token)
    page.goto(f"{live.url}/console/agencies/{G22}")
    page.get_by_role("button", name="Cấp mã truy cập").click()
    assert page.locator("h1").inner_text() == "Đã cấp mã truy cập"
    token = page.get_by_label(f"Mã truy cập của {G22}").input_value()
    assert token.startswith("axs_")
    headers = {"Authorization": f"Bearer {token}"}
    status, _ = live.call(live.axis.get(headers, "/v1/outbox"))
    assert status == 200
    token_id = page.locator("p.small code").inner_text()
    page.get_by_role("link", name="Quay lại trang cơ quan").click()
    assert token not in page.content()  # shown once only
    page.get_by_role("button", name=f"Thu hồi {token_id}").click()
    assert "Đã thu hồi mã truy cập" in page.locator(".notice").inner_text()
    status, _ = live.call(live.axis.get(headers, "/v1/outbox"))
    assert status == 401


def test_an_auditor_finds_no_way_to_change_anything_and_a_forged_post_is_refused(
    page: Any, live: LiveAxis, world: World, auditor_token: str
) -> None:
    """No page offers an auditor a change (only sign-out posts); a POST made anyway, even
    with the session's CSRF token, is 403 and changes nothing."""
    sign_in(page, live.url, auditor_token)
    pages = [
        "/console/",
        "/console/messages",
        f"/console/messages/{world.message}",
        "/console/deliveries",
        "/console/agencies",
        f"/console/agencies/{G22}",
        "/console/audit",
    ]
    for path in pages:
        page.goto(live.url + path)
        actions = page.eval_on_selector_all(
            "form[method=post]", "forms => forms.map(f => f.getAttribute('action'))"
        )
        assert actions == ["/console/signout"], (path, actions)
    csrf = page.locator("input[name=csrf]").first.input_value()
    answer = page.request.post(
        f"{live.url}/console/agencies/{G22}/status",
        form={"csrf": csrf, "status": "suspended", "successor": ""},
        max_redirects=0,
    )
    assert answer.status == 403
    page.set_content(answer.text())
    _, shown = live.call(live.axis.get(live.axis.admin, f"/v1/admin/agencies/{G22}"))
    assert shown["status"] == "active"


def test_a_form_without_its_csrf_token_is_refused(
    page: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """A signed-in administrator's browser posting without the token (as a forged page
    would) is refused; nothing is suspended."""
    sign_in(page, live.url, admin_token)
    for form in ({"status": "suspended"}, {"status": "suspended", "csrf": "f" * 64}):
        answer = page.request.post(
            f"{live.url}/console/agencies/{G22}/status", form=form, max_redirects=0
        )
        assert answer.status == 403 and "CSRF" in answer.text()
    page.set_content(answer.text())
    _, shown = live.call(live.axis.get(live.axis.admin, f"/v1/admin/agencies/{G22}"))
    assert shown["status"] == "active"


def test_the_language_switch_is_on_every_page(
    page: Any, live: LiveAxis, world: World, auditor_token: str
) -> None:
    """Vietnamese first; English from the switch, on the same page; and back."""
    page.goto(f"{live.url}/console/")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.get_by_role("link", name="English").click()
    assert page.get_by_role("heading", name="Sign in").is_visible()
    page.get_by_label("Token").fill(auditor_token)
    page.get_by_role("button", name="Sign in").click()
    page.goto(f"{live.url}/console/deliveries")
    assert page.locator("h1").inner_text() == "Deliveries"
    page.get_by_role("link", name="Tiếng Việt").click()
    page.wait_for_url(re.compile(r".*/console/deliveries$"))
    assert page.locator("h1").inner_text() == "Chuyển phát"
    assert page.locator("html").get_attribute("lang") == "vi"


def test_vietnamese_search_without_diacritics(
    page: Any, live: LiveAxis, world: World, auditor_token: str
) -> None:
    """“ha noi” finds Hà Nội among the agencies, and as a recipient of messages."""
    sign_in(page, live.url, auditor_token)
    page.get_by_role("link", name="Cơ quan").click()
    page.get_by_label("Tên hoặc mã định danh").fill("ha noi")
    page.get_by_role("button", name="Tìm kiếm").click()
    assert page.get_by_role("link", name=H26).is_visible()
    assert "Ủy ban nhân dân thành phố Hà Nội" in page.locator("table").inner_text()
    page.goto(f"{live.url}/console/messages")
    page.get_by_label("Nơi nhận (mã hoặc tên)").fill("thanh pho ha noi")
    page.get_by_role("button", name="Tìm kiếm").click()
    rows = page.locator("table tbody tr")
    assert rows.count() >= 2 and H26 in rows.first.inner_text()


def test_it_works_with_script_disabled_and_by_keyboard_with_labelled_controls(
    browser: Any, live: LiveAxis, world: World, admin_token: str
) -> None:
    """Without script: sign in, search and open a message. The first Tab reaches the skip
    link; every control has a label; nothing scrolls sideways on a laptop screen; text and
    links have readable contrast."""
    context = browser.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 720}
    )
    page = context.new_page()
    try:
        page.goto(f"{live.url}/console/")
        assert page.evaluate("document.activeElement.id") == "token"  # autofocus
        page.keyboard.type(admin_token)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/console/$"))
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")  # from the start of the content: its first link
        assert page.evaluate("document.activeElement.closest('main') !== null")
        for path in (
            "/console/",
            "/console/messages",
            f"/console/agencies/{G22}",
            "/console/audit",
        ):
            page.goto(live.url + path)
            unlabelled = page.eval_on_selector_all(
                "input:not([type=hidden]), select, textarea",
                "els => els.filter(e => !e.labels || e.labels.length === 0).map(e => e.name)",
            )
            assert unlabelled == [], (path, unlabelled)
            wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
            assert not wide, path
        page.goto(f"{live.url}/console/messages?q={world.document_id}&kind=edoc")
        page.get_by_role("link", name=world.document_id).first.click()
        assert page.locator("h1").inner_text() == world.document_id
        ratios = page.evaluate(CONTRAST)
        assert min(ratios) >= 4.5, ratios
    finally:
        page.screenshot(path=str(Path(__file__).parent / "screenshots" / "no_script.png"))
        context.close()


# WCAG contrast of body text, links, table headers and badges against their backgrounds
CONTRAST = """() => {
  const rgb = s => s.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
  const lum = c => { const [r, g, b] = c.map(v => { v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const bg = el => { while (el) { const c = getComputedStyle(el).backgroundColor;
    if (!c.startsWith('rgba(0, 0, 0, 0)')) return rgb(c); el = el.parentElement; }
    return [255, 255, 255]; };
  const ratio = el => { const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05); };
  return [...document.querySelectorAll('p, a, th, td, .badge, dt, dd, h1, h2, label, button')]
    .filter(e => e.offsetParent !== null && e.textContent.trim()).map(ratio);
}"""


@pytest.fixture
def idle_live(tmp_path: Path) -> Iterator[LiveAxis]:
    """An axis whose console sessions end after two seconds without a request."""
    server = live_axis(tmp_path, {"AXIS_CONSOLE_IDLE": "2"})
    try:
        yield server
    finally:
        server.close()


def test_expiry_signs_out(page: Any, idle_live: LiveAxis) -> None:
    """Idle past the limit, the next click lands on the sign-in page saying why, and
    signing in again goes back to the page asked for."""
    token = idle_live.token("admin")
    sign_in(page, idle_live.url, token)
    page.get_by_role("link", name="Cơ quan").click()
    time.sleep(2.5)
    page.get_by_role("link", name="Kiểm toán").click()
    assert page.get_by_role("heading", name="Đăng nhập").is_visible()
    assert "Phiên làm việc đã kết thúc" in page.locator(".notice").inner_text()
    page.get_by_label("Mã truy cập").fill(token)
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url(re.compile(r".*/console/audit$"))
    assert page.locator("h1").inner_text() == "Nhật ký kiểm toán"
