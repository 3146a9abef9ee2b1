// Whether an error means the disk (or the user's quota on it) is full: the one failure a
// process should live through on every write path, say plainly, and recover from by itself.

const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/** True for ENOSPC and EDQUOT from the file system and SQLITE_FULL from SQLite, also as a cause. */
export function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (DISK_FULL_CODES.has(String((e as { code?: unknown }).code))) return true;
  }
  return false;
}
