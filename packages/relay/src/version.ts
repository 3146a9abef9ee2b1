// The relay's version, as the CLI and the API description report it.
export const RELAY_VERSION = '0.1.0';
