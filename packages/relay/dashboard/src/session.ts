// Who is logged in: the token (kept in this browser tab's session storage) and what /v1/whoami
// said of it. The page offers only what the token's role allows; the relay checks it again.

import { roleAllows, type Role } from '@outpost/shared/browser';

const TOKEN_KEY = 'outpost.token';

export interface Whoami {
  kind: string;
  id: string;
  name: string;
  role: Role;
  expiresAt: string | null;
}

type EndListener = (message: string) => void;

class Session {
  me: Whoami | null = null;
  readonly #onEnd: EndListener[] = [];

  token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  begin(token: string, me: Whoami): void {
    sessionStorage.setItem(TOKEN_KEY, token);
    this.me = me;
  }

  /** Whether the token may do what needs `role`. */
  can(role: Role): boolean {
    return this.me !== null && roleAllows(this.me.role, role);
  }

  onEnd(listener: EndListener): void {
    this.#onEnd.push(listener);
  }

  end(message = ''): void {
    const had = this.token() !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    this.me = null;
    if (had || message) for (const l of this.#onEnd) l(message);
  }
}

export const session = new Session();
