export { createAgent, AGENT_VERSION, STATE_FILE, type Agent, type AgentOptions, type AgentStateFile } from './agent.js';
export { enroll, type EnrollOptions } from './enroll.js';
export { readDeviceFile, writeDeviceFile, defaultAgentDir, DEVICE_FILE, type DeviceFile } from './device-file.js';
