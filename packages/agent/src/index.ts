export { createAgent, type Agent, type AgentOptions } from './agent.js';
export { AGENT_VERSION } from './version.js';
export { STATE_FILE, readStateFile, type AgentStateFile } from './state-file.js';
export { enroll, type EnrollOptions } from './enroll.js';
export { readDeviceFile, writeDeviceFile, defaultAgentDir, DEVICE_FILE, type DeviceFile } from './device-file.js';
export { LogRing } from './log-ring.js';
