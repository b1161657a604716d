import { writeFileSync } from 'node:fs';
import { launchBrowser } from '../../harness/browser.js';

/**
 * Line charts for bench results: an SVG built here, rendered to PNG by the system Chromium (the one the
 * e2e tests use), so a plot needs no charting package.
 */

export interface Series {
  readonly label: string;
  readonly color: string;
  readonly points: readonly { x: number; y: number }[];
}

export interface Panel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
}

const W = 900;
const PANEL_H = 260;
const M = { left: 70, right: 20, top: 34, bottom: 40 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A tick step of 1, 2 or 5 times a power of ten giving about `count` ticks over `span`. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

function panelSvg(panel: Panel, xMax: number, xLabel: string, top: number): string {
  const ys = panel.series.flatMap((s) => s.points.map((p) => p.y)).filter(Number.isFinite);
  const yMax = Math.max(1, ...ys) * 1.1;
  const pw = W - M.left - M.right;
  const ph = PANEL_H - M.top - M.bottom;
  const sx = (x: number) => M.left + (x / (xMax || 1)) * pw;
  const sy = (y: number) => top + M.top + ph - (y / yMax) * ph;
  const out: string[] = [];
  out.push(`<text x="${M.left}" y="${top + 20}" font-size="15" font-weight="bold">${esc(panel.title)}</text>`);
  const yStep = niceStep(yMax, 5);
  for (let y = 0; y <= yMax; y += yStep) {
    out.push(`<line x1="${M.left}" x2="${W - M.right}" y1="${sy(y)}" y2="${sy(y)}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${M.left - 6}" y="${sy(y) + 4}" font-size="11" text-anchor="end">${+y.toFixed(6)}</text>`);
  }
  const xStep = niceStep(xMax, 10);
  for (let x = 0; x <= xMax + 1e-9; x += xStep) {
    out.push(`<text x="${sx(x)}" y="${top + PANEL_H - M.bottom + 16}" font-size="11" text-anchor="middle">${+x.toFixed(6)}</text>`);
  }
  out.push(`<text x="${M.left + pw / 2}" y="${top + PANEL_H - 6}" font-size="12" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(
    `<text x="16" y="${top + M.top + ph / 2}" font-size="12" text-anchor="middle" transform="rotate(-90 16 ${top + M.top + ph / 2})">${esc(panel.yLabel)}</text>`,
  );
  out.push(`<rect x="${M.left}" y="${top + M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  panel.series.forEach((s, i) => {
    const pts = s.points.filter((p) => Number.isFinite(p.y)).map((p) => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
    if (pts.length) out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${pts.join(' ')}"/>`);
    const lx = W - M.right - 220;
    const ly = top + M.top + 14 + i * 16;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly + 4}" font-size="12">${esc(s.label)}</text>`);
  });
  return out.join('\n');
}

/** An SVG document with one chart per panel, stacked, sharing the x axis (0..xMax). */
export function chartSvg(title: string, panels: readonly Panel[], xLabel: string): string {
  const xMax = Math.max(0, ...panels.flatMap((p) => p.series.flatMap((s) => s.points.map((q) => q.x))));
  const h = 30 + panels.length * PANEL_H;
  const body = panels.map((p, i) => panelSvg(p, xMax, xLabel, 30 + i * PANEL_H)).join('\n');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="${W / 2}" y="20" font-size="14" text-anchor="middle">${esc(title)}</text>\n${body}</svg>`
  );
}

/** Render `svg` to a PNG file with headless Chromium. */
export async function writePng(svg: string, file: string): Promise<void> {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage();
    const width = Number(/width="(\d+)"/.exec(svg)?.[1] ?? W);
    const height = Number(/height="(\d+)"/.exec(svg)?.[1] ?? 600);
    await page.setViewportSize({ width, height });
    await page.setContent(`<html><body style="margin:0">${svg}</body></html>`);
    writeFileSync(file, await page.screenshot({ type: 'png', clip: { x: 0, y: 0, width, height } }));
  } finally {
    await browser.close();
  }
}
