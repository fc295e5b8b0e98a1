// Opens the page in headless Chromium (Debian's, not a downloaded one) and
// prints what it computed, plus the status line it shows, as JSON.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`page: ${m.text()}`));
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30000 });
  const result = await page.evaluate(() => window.__result);
  const shown = await page.textContent("#status");
  if (screenshot) await page.screenshot({ path: screenshot });
  console.log(JSON.stringify({ result, shown }));
} finally {
  await browser.close();
}
