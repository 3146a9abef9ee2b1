// bench/dashboard: the web dashboard's speed and memory with a large fleet streaming live. A
// real relay on loopback (ephemeral ports, a temp data dir), --devices simulated devices
// (bench/fleet/worker.ts in --workers processes) sending --rate heartbeats a second together
// (each one every devices/rate seconds), and the dashboard in headless Chromium
// (playwright-core), logged in with the admin token on the fleet table. Over --seconds with the
// stream live it measures:
//   - the main thread's long tasks (PerformanceObserver 'longtask'): the longest, how many over
//     50 ms, their blocking time past 50 ms, and the main thread's busy share (CDP TaskDuration);
//   - frames per second (a requestAnimationFrame counter) while the fleet table scrolls
//     continuously for --scroll seconds (#fleet-scroll when the page has that container, else
//     the window; --scroll-px a frame, back and forth), and while it does not;
//   - the JS heap (CDP Performance.getMetrics JSHeapUsedSize) every --heap-every seconds: first,
//     last, max and slope, and the retained heap after a forced GC before and after the window;
//   - the DOM rows in `#fleet tbody` (all devices, or only those on screen when virtualised).
// It prints a table of the figures against the goal (no task over 50 ms; heap flat: the heap
// after a forced GC grows by under 1 MiB a minute) and a last line of JSON with every figure,
// for docs/benchmarks.md. The machine matters: it prints the load average and the frame rate
// of an empty page in the same browser (the ceiling for the FPS figures).
//
//   npx tsx bench/dashboard/run.ts [--devices 10000] [--rate 1000] [--seconds 30] [--scroll 10]
//       [--workers 4] [--heap-every 5] [--scroll-px 200] [--screenshot FILE] [--relay-log FILE] [--profile FILE] [--pin]

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Browser, CDPSession, Page } from 'playwright-core';
import { launchBrowser } from '../../test/helpers/browser.js';
import { cpuSeconds } from '../proc-stats.js';
import { startBenchFleet, type BenchFleet } from './fleet.js';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '10000' },
    /** Heartbeats a second from all devices together: each beats every devices/rate seconds. */
    rate: { type: 'string', default: '1000' },
    /** The measured window, with the stream live. */
    seconds: { type: 'string', default: '30' },
    /** How much of the window the fleet table scrolls (in its middle). */
    scroll: { type: 'string', default: '10' },
    'scroll-px': { type: 'string', default: '200' },
    'heap-every': { type: 'string', default: '5' },
    workers: { type: 'string', default: '4' },
    screenshot: { type: 'string' },
    'relay-log': { type: 'string' },
    /**
     * Pins Chromium to one core and the relay, the simulators and this process to the other
     * (taskset), so the page is measured with a core of its own, as on a person's computer.
     */
    pin: { type: 'boolean', default: false },
    /** Writes the page's CPU profile over the window to this file (.cpuprofile, for DevTools). */
    profile: { type: 'string' },
  },
});
const N = Number(values.devices);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const SCROLL_S = Math.min(Number(values.scroll), SECONDS);
const SCROLL_PX = Number(values['scroll-px']);
const HEAP_EVERY_S = Number(values['heap-every']);
const HEARTBEAT_MS = Math.round((N / RATE) * 1000);
for (const [k, v] of Object.entries({ devices: N, rate: RATE, seconds: SECONDS, workers: Number(values.workers) })) if (!(v > 0)) throw new Error(`--${k} takes a positive number`);
const GOAL_TASK_MS = 50;
/**
 * Heap flat: the retained heap (after a forced GC at either end of the window) grows by less
 * than this a minute. The slope of the sampled heap is printed too, but it counts garbage not
 * yet collected (megabytes up and down between scavenges), too noisy over 30 s to judge by.
 */
const GOAL_RETAINED_MIB_PER_MIN = 1;
const MiB = 1024 * 1024;
const say = (s: string) => process.stdout.write(`${s}\n`);

// ---- cleanup: the relay and simulators on any exit; playwright kills its Chromium on exit too ----
let fleet: BenchFleet | undefined;
let browser: Browser | undefined;
process.on('exit', () => fleet?.stop());
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    say(`\n${sig}: stopping the browser, the relay and the simulators`);
    const bye = () => process.exit(sig === 'SIGINT' ? 130 : 143);
    setTimeout(bye, 3000).unref();
    (browser ? browser.close() : Promise.resolve()).then(bye, bye);
  });
}

/** What the page records from its first script on (installed before navigation). */
interface PageBench {
  longtasks: Array<{ start: number; duration: number }>;
  frames: number[];
  scroll?: { start: number; end: number; target: string; range: number; px: number; turns: number };
}
// The page's globals that the in-page functions below use, declared for this file only: the
// repo typechecks without the DOM lib, and playwright runs these functions' source in the page.
interface PageScroller {
  scrollTop: number;
  readonly scrollHeight: number;
  readonly clientHeight: number;
}
declare const window: { __bench: PageBench };
declare const document: { getElementById(id: string): PageScroller | null; scrollingElement: PageScroller | null; documentElement: PageScroller; querySelectorAll(selector: string): { length: number } };
declare function requestAnimationFrame(callback: (ts: number) => void): number;
declare class PerformanceObserver {
  constructor(callback: (list: { getEntries(): Array<{ startTime: number; duration: number }> }) => void);
  observe(options: { type: string; buffered?: boolean }): void;
}

// Runs in the page before any of its scripts, on every navigation.
function instrument(): void {
  const b: PageBench = { longtasks: [], frames: [] };
  window.__bench = b;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) b.longtasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  const tick = (ts: number) => {
    b.frames.push(ts);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}

// Runs in the page: scrolls the fleet table by `px` every animation frame for `ms`, turning at
// either end. The container is looked up each frame, as a page may re-create it when it renders.
function scrollFleet([ms, px]: [number, number]): Promise<NonNullable<PageBench['scroll']>> {
  return new Promise((resolve) => {
    const start = performance.now();
    const s = { start, end: start, target: '', range: 0, px: 0, turns: 0 };
    let dir = 1;
    const step = (ts: number) => {
      const box = document.getElementById('fleet-scroll');
      const el = box ?? document.scrollingElement ?? document.documentElement;
      s.target = box ? '#fleet-scroll' : 'window';
      s.range = Math.max(s.range, el.scrollHeight - el.clientHeight);
      const before = el.scrollTop;
      el.scrollTop = before + dir * px;
      s.px += Math.abs(el.scrollTop - before);
      if ((dir > 0 && el.scrollTop + el.clientHeight >= el.scrollHeight - 1) || (dir < 0 && el.scrollTop <= 0)) {
        dir = -dir;
        s.turns++;
      }
      if (ts - start < ms) requestAnimationFrame(step);
      else {
        s.end = performance.now();
        window.__bench.scroll = s;
        resolve(s);
      }
    };
    requestAnimationFrame(step);
  });
}

// tsx (esbuild, keepNames) wraps the inner functions of the in-page functions in
// __name(fn, "name") calls: a page gets this do-nothing __name before they run.
const NAME_SHIM = 'globalThis.__name ??= (fn) => fn;';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (n: number, digits = 1) => (Number.isFinite(n) ? Number(n.toFixed(digits)) : null);

/** Chromium (every process named chromium) on core 0; the relay, simulators and this bench on core 1. */
function pinCores(relay: BenchFleet): void {
  const pin = (core: number, pid: number) => execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' });
  const browsers = execFileSync('pgrep', ['chromium'], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  for (const pid of browsers) pin(0, pid);
  for (const pid of [relay.relayPid, ...relay.workerPids, process.pid]) pin(1, pid);
  say(`pinned: ${browsers.length} chromium processes on core 0; the relay, ${relay.workerPids.length} simulators and the bench on core 1`);
}

async function metrics(cdp: CDPSession): Promise<Record<string, number>> {
  const { metrics: list } = await cdp.send('Performance.getMetrics');
  return Object.fromEntries(list.map((m) => [m.name, m.value]));
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  if (points.length < 2) return Number.NaN;
  const mx = points.reduce((s, [x]) => s + x, 0) / points.length;
  const my = points.reduce((s, [, y]) => s + y, 0) / points.length;
  const num = points.reduce((s, [x, y]) => s + (x - mx) * (y - my), 0);
  const den = points.reduce((s, [x]) => s + (x - mx) ** 2, 0);
  return num / den;
}

/** Frames per second over [a, b] (page time), and the longest gap between two frames there. */
function fps(frames: number[], a: number, b: number): { fps: number; worstFrameMs: number } {
  const inside = frames.filter((f) => f >= a && f <= b);
  let worst = 0;
  for (let i = 1; i < inside.length; i++) worst = Math.max(worst, inside[i]! - inside[i - 1]!);
  // A frame that never came: the gap to the window's ends counts too.
  if (inside.length) worst = Math.max(worst, inside[0]! - a, b - inside.at(-1)!);
  else worst = b - a;
  return { fps: (inside.length / (b - a)) * 1000, worstFrameMs: worst };
}

async function main(): Promise<void> {
  say(`bench/dashboard: ${N} devices, ${RATE} heartbeats/s together (one each every ${HEARTBEAT_MS / 1000} s), a ${SECONDS} s window with ${SCROLL_S} s of scrolling`);
  fleet = await startBenchFleet({ devices: N, workers: Number(values.workers), heartbeatMs: HEARTBEAT_MS, say, ...(values['relay-log'] ? { relayLog: values['relay-log'] } : {}) }, (f) => (fleet = f));
  const relay = fleet;

  // As test/helpers/browser.ts launches it: the flags asked for, and on an HTTPS relay the
  // relay's own certificate trusted by its key (this bench's relay runs --insecure: plain HTTP).
  browser = await launchBrowser({ dataDir: relay.dataDir, httpUrl: relay.httpUrl });
  if (values.pin) pinCores(relay);
  // The frame rate of an empty page: what headless Chromium gives on this machine.
  const blank = await browser.newPage();
  await blank.evaluate(NAME_SHIM);
  const browserFps = await blank.evaluate(
    () =>
      new Promise<number>((resolve) => {
        let n = 0;
        const start = performance.now();
        const tick = () => (++n, performance.now() - start < 2000 ? requestAnimationFrame(tick) : resolve((n / (performance.now() - start)) * 1000));
        requestAnimationFrame(tick);
      }),
  );
  await blank.close();
  const page: Page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  let streamFrames = 0;
  let measuring = false;
  const streamTypes = new Map<string, number>();
  let streamsOpened = 0;
  page.on('websocket', (ws) => {
    if (!ws.url().includes('/v1/fleet/stream')) return;
    streamsOpened++;
    ws.on('framereceived', (f) => {
      streamFrames++;
      // What the stream carries besides heartbeats (status changes cost the page more).
      if (measuring) {
        const type = /"type":"([a-z.]+)"/.exec(String(f.payload))?.[1] ?? '?';
        streamTypes.set(type, (streamTypes.get(type) ?? 0) + 1);
      }
    });
  });
  await page.addInitScript({ content: `${NAME_SHIM}\n(${instrument.toString()})();` });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');

  await page.goto(relay.httpUrl);
  await page.locator('#login').waitFor();
  if (!(await page.evaluate(() => Array.isArray(window.__bench?.frames)))) throw new Error('the instrumenting init script did not run in the page');
  await page.fill('#token', relay.token);
  const loginAt = performance.now();
  const loginPageTime = await page.evaluate(() => performance.now());
  await page.click('#login button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('#fleet tbody tr').length > 0, undefined, { timeout: 180_000, polling: 100 }).catch((err: Error) => {
    throw new Error(`no rows in #fleet tbody: ${err.message.split('\n')[0]}${errors.length ? `; page errors: ${errors.join(' | ')}` : ''}`);
  });
  const firstRowsMs = performance.now() - loginAt;
  say(`logged in: the fleet table showed rows ${(firstRowsMs / 1000).toFixed(1)} s after submitting the token`);
  await sleep(2000);

  // The window: a forced GC before it and after it, for the retained heap.
  await cdp.send('HeapProfiler.collectGarbage');
  const gcBefore = (await metrics(cdp)).JSHeapUsedSize! / MiB;
  await sleep(500);
  const t0 = await page.evaluate(() => performance.now());
  const rowsBefore = await page.evaluate(() => document.querySelectorAll('#fleet tbody tr').length);
  const cpu0 = cpuSeconds(relay.relayPid);
  const in0 = await relay.metric('outpost_mqtt_messages_in_total');
  const frames0 = streamFrames;
  measuring = true;
  const m0 = await metrics(cdp);
  if (values.profile) {
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.start');
  }
  const start = performance.now();
  const streams0 = streamsOpened;
  const heap: Array<{ s: number; mib: number; nodes: number }> = [];
  const sample = async () => {
    const m = await metrics(cdp).catch(() => undefined);
    if (m) heap.push({ s: (performance.now() - start) / 1000, mib: m.JSHeapUsedSize! / MiB, nodes: m.Nodes! });
  };
  await sample();
  const sampler = setInterval(() => void sample(), HEAP_EVERY_S * 1000);
  const windowEnd = start + SECONDS * 1000;
  const progress = setInterval(() => say(`  ${((performance.now() - start) / 1000).toFixed(0)} of ${SECONDS} s${heap.length ? `, heap ${heap.at(-1)!.mib.toFixed(1)} MiB` : ''}, ${streamFrames - frames0} stream messages so far`), 5000);

  // Live and still, then scrolling for SCROLL_S in the middle of the window, then still again.
  await sleep(((SECONDS - SCROLL_S) / 2) * 1000);
  say(`  scrolling the fleet table for ${SCROLL_S} s`);
  const scroll = SCROLL_S > 0 ? await page.evaluate(scrollFleet, [SCROLL_S * 1000, SCROLL_PX] as [number, number]) : undefined;
  await sleep(Math.max(0, windowEnd - performance.now()));
  clearInterval(progress);
  clearInterval(sampler);
  await sample();
  const t1 = await page.evaluate(() => performance.now());
  const windowS = (performance.now() - start) / 1000;
  const m1 = await metrics(cdp);
  if (values.profile) {
    const { profile } = await cdp.send('Profiler.stop');
    writeFileSync(values.profile, JSON.stringify(profile));
    say(`  the page's CPU profile: ${values.profile}`);
  }
  const in1 = await relay.metric('outpost_mqtt_messages_in_total');
  const cpu1 = cpuSeconds(relay.relayPid);
  const frames1 = streamFrames;
  measuring = false;
  const rowsAfter = await page.evaluate(() => document.querySelectorAll('#fleet tbody tr').length);
  const summary = await page.locator('#fleet-summary').innerText({ timeout: 5000 }).then((text) => text.replace(/\s+/g, ' ').trim(), () => null);
  const b = await page.evaluate(() => window.__bench);
  await cdp.send('HeapProfiler.collectGarbage');
  const mGc = await metrics(cdp);
  const gcAfter = mGc.JSHeapUsedSize! / MiB;
  if (values.screenshot) await page.screenshot({ path: values.screenshot });
  await browser.close();
  browser = undefined;

  // ---- figures ----
  const inWindow = b.longtasks.filter((l) => l.start >= t0 && l.start <= t1);
  const atLoad = b.longtasks.filter((l) => l.start >= loginPageTime && l.start < t0);
  const longest = Math.max(0, ...inWindow.map((l) => l.duration));
  const over = inWindow.filter((l) => l.duration > GOAL_TASK_MS);
  const blocking = over.reduce((s, l) => s + l.duration - GOAL_TASK_MS, 0);
  const scrolling = scroll ? fps(b.frames, scroll.start, scroll.end) : undefined;
  // Still: the window outside the scroll.
  const stillFrames = b.frames.filter((f) => f >= t0 && f <= t1 && !(scroll && f >= scroll.start && f <= scroll.end)).length;
  const stillMs = t1 - t0 - (scroll ? scroll.end - scroll.start : 0);
  const heapMib = heap.map((h) => h.mib);
  const heapSlope = slope(heap.map((h) => [h.s / 60, h.mib])); // MiB per minute
  // Which page was measured: the commit, and whether the dashboard had uncommitted changes.
  const git = (...args: string[]) => execFileSync('git', args, { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' }).trim();
  const commit = (() => {
    try {
      return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'packages/relay/dashboard', 'packages/shared/src') ? '+uncommitted' : ''}`;
    } catch {
      return null;
    }
  })();
  const figures = {
    commit,
    devices: N,
    heartbeatS: HEARTBEAT_MS / 1000,
    windowS: round(windowS),
    heartbeatsPerS: round((in1 - in0) / windowS, 0),
    streamMessagesPerS: round((frames1 - frames0) / windowS, 0),
    streamTypes: Object.fromEntries([...streamTypes].sort((a, b) => b[1] - a[1])),
    streamReconnects: streamsOpened - streams0,
    firstRowsMs: round(firstRowsMs, 0),
    loadLongestTaskMs: round(Math.max(0, ...atLoad.map((l) => l.duration)), 0),
    longestTaskMs: round(longest, 0),
    tasksOver50ms: over.length,
    blockingMsPerS: round(blocking / windowS, 0),
    mainThreadBusyPct: round(((m1.TaskDuration! - m0.TaskDuration!) / windowS) * 100, 0),
    scrollTarget: scroll?.target ?? null,
    scrollRangePx: scroll ? round(scroll.range, 0) : null,
    scrolledPx: scroll ? round(scroll.px, 0) : null,
    scrollFps: scrolling ? round(scrolling.fps) : null,
    scrollWorstFrameMs: scrolling ? round(scrolling.worstFrameMs, 0) : null,
    stillFps: round((stillFrames / stillMs) * 1000),
    emptyPageFps: round(browserFps),
    heapFirstMiB: round(heapMib[0]!),
    heapLastMiB: round(heapMib.at(-1)!),
    heapMaxMiB: round(Math.max(...heapMib)),
    heapSlopeMiBPerMin: round(heapSlope, 2),
    heapSamples: heap.length,
    heapAfterGcStartMiB: round(gcBefore),
    heapAfterGcEndMiB: round(gcAfter),
    heapRetainedMiBPerMin: round((gcAfter - gcBefore) / (windowS / 60), 2),
    domRows: rowsAfter,
    domRowsAtStart: rowsBefore,
    domNodesMax: Math.max(...heap.map((h) => h.nodes)),
    domNodesAfterGc: mGc.Nodes!,
    layoutsPerS: round((m1.LayoutCount! - m0.LayoutCount!) / windowS),
    relayCpuPct: round(((cpu1 - cpu0) / windowS) * 100, 0),
    loadAverage: Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]),
    pageErrors: errors.length,
  };
  const noLongTasks = over.length === 0;
  const heapFlat = figures.heapRetainedMiBPerMin! < GOAL_RETAINED_MIB_PER_MIN;

  const rows: Array<[string, string, string?]> = [
    ['dashboard measured', `${commit ?? '(no git)'} at ${relay.httpUrl}`],
    ['devices, heartbeat', `${N}, one each every ${HEARTBEAT_MS / 1000} s`],
    ['heartbeats ingested by the relay', `${figures.heartbeatsPerS}/s (asked ${RATE}/s)`],
    ['stream messages by type', Object.entries(figures.streamTypes as Record<string, number>).map(([k, n]) => `${k} ${n}`).join(', ')],
    ['stream messages to the page', `${figures.streamMessagesPerS}/s${figures.streamMessagesPerS! < 0.9 * figures.heartbeatsPerS! ? ' (fewer: the relay coalesces a device\'s heartbeats for a page that falls behind)' : ''}; ${figures.streamReconnects} reconnects`],
    ['rows shown after login', `${(firstRowsMs / 1000).toFixed(1)} s; ${atLoad.length ? `longest task meanwhile ${figures.loadLongestTaskMs} ms` : 'no task over 50 ms meanwhile'}`],
    ['longest main-thread task', `${figures.longestTaskMs} ms`, `≤ ${GOAL_TASK_MS} ms: ${longest <= GOAL_TASK_MS ? 'met' : 'missed'}`],
    ['tasks over 50 ms', `${over.length} in ${figures.windowS} s (${figures.blockingMsPerS} ms/s blocked past 50 ms)`, `0: ${noLongTasks ? 'met' : 'missed'}`],
    ['main thread busy', `${figures.mainThreadBusyPct}% (${figures.layoutsPerS} layouts/s)`],
    ['FPS while scrolling', scrolling ? `${figures.scrollFps} (worst frame ${figures.scrollWorstFrameMs} ms; ${scroll!.target}, ${figures.scrolledPx} px over a ${figures.scrollRangePx} px range)` : 'not measured'],
    ['FPS while still', `${figures.stillFps} (an empty page: ${figures.emptyPageFps})`],
    [`JS heap, every ${HEAP_EVERY_S} s`, `first ${figures.heapFirstMiB}, last ${figures.heapLastMiB}, max ${figures.heapMaxMiB} MiB; slope ${figures.heapSlopeMiBPerMin} MiB/min (garbage included)`],
    ['JS heap after a forced GC', `${figures.heapAfterGcStartMiB} → ${figures.heapAfterGcEndMiB} MiB (${figures.heapRetainedMiBPerMin} MiB/min)`, `< ${GOAL_RETAINED_MIB_PER_MIN} MiB/min: ${heapFlat ? 'flat' : 'not flat'}`],
    ['DOM rows in #fleet tbody', `${rowsAfter} (at the start ${rowsBefore}) for ${N} devices: ${rowsAfter < N / 2 ? 'virtualised' : 'every device has a row'}`],
    ['DOM nodes', `up to ${figures.domNodesMax} sampled, ${figures.domNodesAfterGc} after the GC`],
    ['page summary', summary ?? '(no #fleet-summary)'],
    ['relay CPU, load average', `${figures.relayCpuPct}% of one core; ${figures.loadAverage} (2 cores)`],
    ['page errors', errors.length ? `${errors.length}: ${errors.slice(0, 3).join(' | ')}` : 'none'],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  say('');
  say(`Goal: no main-thread task over ${GOAL_TASK_MS} ms with the stream live, and the heap flat.`);
  say(`${'figure'.padEnd(w0)} | ${'measured'.padEnd(w1)} | goal`);
  say(`${'-'.repeat(w0)}-|-${'-'.repeat(w1)}-|-${'-'.repeat(20)}`);
  for (const [k, v, g] of rows) say(`${k.padEnd(w0)} | ${v.padEnd(w1)} | ${g ?? ''}`);
  say(`goal ${noLongTasks && heapFlat ? 'MET' : 'MISSED'}: ${noLongTasks ? 'no task over 50 ms' : `${over.length} tasks over 50 ms, the longest ${figures.longestTaskMs} ms`}; heap ${heapFlat ? 'flat' : 'not flat'}`);
  say(JSON.stringify({ bench: 'dashboard', ...figures, goal: { noTaskOver50ms: noLongTasks, heapFlat } }));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench/dashboard failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
