// Why a relay could not listen, said as one line with its fix (the CLI prints it as
// `error: …`). The system code (EADDRINUSE, …) stays on the error for callers that retry.

export interface ListenTarget {
  /** What listens: "HTTP" or "MQTT". */
  service: string;
  host: string;
  port: number;
  /** The flag that picks the port, e.g. --http-port. */
  flag: string;
  /** Another way out, appended to the fix. */
  orElse?: string;
}

export function listenFailure(err: unknown, to: ListenTarget): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${to.service} port ${to.port} on ${to.host}`;
  const orElse = to.orElse ? `, ${to.orElse}` : '';
  let message: string | undefined;
  if (code === 'EADDRINUSE') message = `${where} is in use: pick another with ${to.flag} (0 picks a free one)${orElse}`;
  else if (code === 'EACCES') message = `${where} needs privileges this user lacks: pick one above 1023 with ${to.flag}${orElse}`;
  else if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') message = `cannot listen on ${to.host}: this machine has no such address (${code}): pick another with --host`;
  if (!message) return err;
  return Object.assign(new Error(message, { cause: err }), { code });
}
