/** The gateway's firmware agent: signed manifests from the `firmware` shadow, staged, applied, self-tested. */
export { FirmwareAgent, type FirmwareAgentDeps, MAX_CLOCK_SKEW_MS } from './agent.js';
export { type CommandResult, runCommand, switchLink } from './apply.js';
export { fetchHttpGet, type HttpGet, type HttpGetResponse } from './download.js';
export * from './errors.js';
export { type AgentState, type InProgress, loadState, UPDATE_STEPS, type UpdateStep } from './state.js';
