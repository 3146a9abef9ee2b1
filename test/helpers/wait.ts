// Waiting on conditions with a deadline: polls, never sleeps a fixed time as synchronisation.

export async function waitFor<T>(what: string, check: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Checks that `holds` stays true for `forMs` (polling), for what must NOT happen in a span of
 * time, such as a health window passing while its device is cut off. Resolves with the number
 * of checks, or throws naming what broke it.
 */
export async function holdsFor(what: string, holds: () => boolean | Promise<boolean>, forMs: number, intervalMs = 100): Promise<number> {
  const end = Date.now() + forMs;
  let checks = 0;
  while (Date.now() < end) {
    if (!(await holds())) throw new Error(`${what} stopped holding after ${checks} checks`);
    checks++;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return checks;
}
