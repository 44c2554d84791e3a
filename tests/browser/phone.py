"""What "works at phone width" means, checked in the page itself."""

PHONE = {"width": 390, "height": 844}

# The document must not scroll sideways, and no element may stick out of the viewport unless an
# ancestor that fits in it scrolls (a wide table, the trace lines, a chart's box).
OVERFLOW_JS = """() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const x = getComputedStyle(p).overflowX;
      if ((x === "auto" || x === "scroll" || x === "hidden") &&
          p.getBoundingClientRect().right <= vw + 0.5) return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll("body *")) {
    const r = el.getBoundingClientRect();
    if (!r.width || (r.right <= vw + 0.5 && r.left >= -0.5)) continue;
    if (scrolls(el)) continue;
    const name = `${el.tagName.toLowerCase()}#${el.id}.${el.className}`;
    wide.push(`${name} ${Math.round(r.left)}..${Math.round(r.right)}`);
  }
  return {scrollWidth: document.documentElement.scrollWidth, viewport: vw, wide: wide.slice(0, 10)};
}"""


def assert_fits(page, what: str) -> None:
    # Folded sections count too: open them all first.
    page.evaluate("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    found = page.evaluate(OVERFLOW_JS)
    assert found["viewport"] == PHONE["width"], found
    assert found["scrollWidth"] <= PHONE["width"], f"{what}: {found}"
    assert not found["wide"], f"{what}: {found['wide']}"
