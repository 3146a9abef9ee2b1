// The MQTT user the relay's own client connects as on an external broker (the dynamic-security
// client it makes, and the subject of the certificate it shows over mutual TLS). Apart so that
// the CLI can name it without loading the MQTT client.
export const RELAY_USER = 'outpost-relay';
