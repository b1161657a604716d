import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Headless Chromium for the e2e tests and the benches. Uses the system Chromium (never a downloaded
 * one); every page gets a fresh context, so no profile state carries over between tests.
 */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
] as const;

/** Launch Chromium. Signal handling is left to the caller, which closes the browser itself. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS],
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    timeout: 30_000,
  });
}

export interface OpenedPage {
  readonly context: BrowserContext;
  readonly page: Page;
  /** Uncaught exceptions thrown in the page ('pageerror'). */
  readonly pageErrors: Error[];
  /** Every request URL the page made, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A fresh context and page at `url`, collecting page errors and request URLs from the start. */
export async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const pageErrors: Error[] = [];
  const requests: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err));
  page.on('request', (req) => {
    if (requests.length < 20_000) requests.push(req.url());
  });
  await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  return {
    context,
    page,
    pageErrors,
    requests,
    close: () => context.close().catch(() => {}),
  };
}
