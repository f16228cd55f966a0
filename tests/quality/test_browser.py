"""In a real browser (Chromium via Playwright): log into the Airflow UI started by the test, open the Data quality
page from the navigation, check its numbers against the warehouse for sandbox data, drill down into a batch, see
a DAG run's batches in its tab, and check that requests without the login are refused."""

from urllib.parse import quote

import httpx

from tests.dags.test_his_pull import run_dag

COUNTS = ("received", "stored", "updated", "unchanged", "refused")


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_data_quality_page_in_the_airflow_ui(airflow_ui, chromium, wh):
    run = run_dag()
    assert run.state == "success"
    base = airflow_ui.url

    # plugin endpoints are not protected by Airflow: ours refuse anonymous callers and bad tokens
    for path in ("/data-quality/", "/data-quality/api/overview", "/data-quality/batch/1", "/data-quality/ops"):
        assert httpx.get(base + path).status_code == 401, path
        bad = httpx.get(base + path, headers={"Authorization": "Bearer not-a-token"})
        assert bad.status_code in (401, 403), path
    anon = chromium.new_context()
    page = anon.new_page()
    page.goto(f"{base}/data-quality/")
    assert "Not authenticated" in page.content() and "Received" not in page.content()
    anon.close()

    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{base}/")
        page.get_by_label("Username").fill(airflow_ui.user)
        page.get_by_label("Password").fill(airflow_ui.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/auth/login" not in u, timeout=30_000)

        # the navigation has the page; it opens inside the Airflow UI (an iframe under /plugin/data-quality)
        page.get_by_role("link", name="Data quality").first.click()
        page.wait_for_url("**/plugin/data-quality", timeout=30_000)
        frame = page.frame_locator("iframe")
        totals = frame.locator("#totals")
        totals.wait_for(timeout=30_000)
        want = wh.execute(
            "SELECT sum(received), sum(stored), sum(updated), sum(unchanged), sum(refused), count(*) "
            "FROM wh.ingest_batch"
        ).fetchone()
        shown = [number(totals.locator(f"td[data-k={c}]").inner_text()) for c in (*COUNTS, "batches")]
        assert shown == list(want)
        assert want[4] > 0  # the sandbox's deliberately bad records

        # per facility, as in the warehouse
        for ref, received, refused in wh.execute(
            "SELECT source_ref, sum(received), sum(refused) FROM wh.ingest_batch GROUP BY 1"
        ).fetchall():
            row = frame.locator(f"#facilities tr[data-facility='{ref}']")
            assert number(row.locator("td[data-k=received]").inner_text()) == received
            assert number(row.locator("td[data-k=refused]").inner_text()) == refused

        # the rules ranked, with their Vietnamese messages
        top_rule, top_n = wh.execute(
            "SELECT e.key, sum(e.value::int) FROM wh.ingest_batch, jsonb_each_text(refusals_by_rule) e "
            "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchone()
        first = frame.locator("#rules tr[data-rule]").first
        assert first.get_attribute("data-rule") == top_rule
        assert number(first.locator("td[data-k=records]").inner_text()) == top_n
        assert first.locator("td.msg").inner_text().strip()

        # filter by that rule (the form, in the iframe)
        frame.locator("select[name=rule]").select_option(top_rule)
        frame.get_by_role("button", name="Apply").click()
        frame.locator("#totals td[data-k=rule_refused]").wait_for(timeout=30_000)
        assert number(frame.locator("#totals td[data-k=rule_refused]").inner_text()) == top_n

        # drill down into the batch with the most refusals
        batch_id, ref, kind, refused = wh.execute(
            "SELECT batch_id, source_ref, kind, refused FROM wh.ingest_batch ORDER BY refused DESC, batch_id LIMIT 1"
        ).fetchone()
        frame.get_by_role("link", name=str(batch_id), exact=True).click()
        frame.locator("#refusals").wait_for(timeout=30_000)
        assert number(frame.locator("#totals td[data-k=refused]").inner_text()) == refused
        per_rule_field = wh.execute(
            "SELECT e->>'code', e->>'field', array_agg(DISTINCT r.row_no ORDER BY r.row_no) FROM wh.batch_record r, "
            "jsonb_array_elements(r.reasons) e WHERE r.batch_id = %s AND r.outcome = 'refused' GROUP BY 1, 2",
            (batch_id,),
        ).fetchall()
        rows = frame.locator("#refusals tr[data-rule]")
        assert rows.count() == len(per_rule_field)
        for code, field, row_nos in per_rule_field:
            row = frame.locator(f"#refusals tr[data-rule='{code}'][data-field='{field}']")
            assert number(row.locator("td[data-k=records]").inner_text()) == len(row_nos)
            assert [int(x) for x in row.locator("td[data-k=rows]").inner_text().split(",")] == row_nos
        # ... and from it to the task instance that ingested it
        ti = frame.locator("#ti-link")
        href = ti.get_attribute("href")
        assert href.startswith(f"/dags/his_pull/runs/{quote(run.run_id, safe='')}/tasks/hospital.ingest_{kind.lower()}")
        assert "/mapped/" in href
        ti.click()
        page.wait_for_url(f"**/tasks/hospital.ingest_{kind.lower()}/mapped/*", timeout=30_000)

        # the DAG run's own tab: that run's batches
        page.goto(f"{base}/dags/his_pull/runs/{quote(run.run_id, safe='')}/plugin/data-quality-run")
        run_frame = page.frame_locator("iframe")
        run_frame.locator("#batches").wait_for(timeout=30_000)
        assert run_frame.locator("#batches tr[data-batch]").count() == 6
        assert number(run_frame.locator("#totals td[data-k=refused]").inner_text()) == want[4]

        # operations: the HIS watermarks the run moved
        page.goto(f"{base}/data-quality/ops")
        assert page.locator("#watermarks tr[data-source=his]").count() == 6
    except Exception:
        page.screenshot(path=str(airflow_ui.log.with_name("failure.png")), full_page=True)
        raise
    finally:
        context.close()
