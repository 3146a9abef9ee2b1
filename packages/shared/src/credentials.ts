// The kinds of Outpost credentials, by their prefix: `kind_id_secret` (the relay's
// auth/secrets.ts makes and checks them). Both CLIs use the prefix alone to say which one a
// person pasted where another belongs, before anything is sent.

/** What each prefix names. */
export const CREDENTIAL_KINDS = {
  opa: 'an API token',
  ope: 'an enrollment token',
  ods: 'a device secret',
} as const;

export type CredentialKind = keyof typeof CREDENTIAL_KINDS;

/** The kind a credential's prefix names, or undefined when it has none of Outpost's prefixes. */
export function credentialKind(text: string): CredentialKind | undefined {
  const prefix = /^([a-z]{3})_/.exec(text.trim())?.[1];
  return prefix !== undefined && Object.hasOwn(CREDENTIAL_KINDS, prefix) ? (prefix as CredentialKind) : undefined;
}

/**
 * Why `text` cannot be an enrollment token, or undefined when it may be one. Says only what its
 * prefix shows: nothing about whether the credential is valid.
 */
export function notAnEnrollToken(text: string): string | undefined {
  const kind = credentialKind(text);
  if (kind === 'ope') return undefined;
  const fix = 'make one on the relay host with outpost-relay tokens enroll';
  if (kind) return `that is ${CREDENTIAL_KINDS[kind]} (${kind}_…), not an enrollment token (ope_…): ${fix}`;
  return `that is not an enrollment token (they start with ope_): ${fix}`;
}
