/**
 * The gateway's firmware agent. It watches the `firmware` named shadow (its `update/delta` topic, and a
 * `get` on every connect so that an update written while the gateway was offline reaches it), and
 * installs the signed manifest in `desired`:
 *
 *   checks -> downloading -> verifying (SHA-256, then staged into versions/{v}/firmware.bin) -> applying
 *   -> testing (self-test) -> succeeded (the anti-rollback floor is raised to the version)
 *
 * Checks, in order: the signing key is trusted, the signature verifies, the target is this gateway's,
 * the manifest has not expired and was not issued in the future (beyond MAX_CLOCK_SKEW_MS), the version
 * is above the floor, the size is within `maxSizeBytes`. A failed check, a failed download or a hash
 * mismatch ends in `failed` with nothing changed; a failed apply or self-test rolls back to the running
 * version and ends in `rolled_back`. Every state change is reported in `reported.firmware`.
 *
 * One update runs at a time. A desired document that arrives meanwhile waits until the running update
 * ends (only the latest one waits; it does not interrupt a download): superseding would save bandwidth,
 * but waiting keeps one update's story in the shadow from start to end.
 *
 * Crash safety: the state file records the step BEFORE its side effects. On restart:
 * - downloading: the download resumes (Range request from the `.part` file's size);
 * - verifying: the hash check and the staging are redone (from the `.part` file, or from the staged file
 *   when the rename had happened; from a new download when neither is there);
 * - applying or testing: the gateway may be running an untested version, so it rolls back to the last
 *   committed version and reports `rolled_back` ("interrupted during apply" / "... self-test"). A
 *   restart never resumes a self-test: `current` never points at an untested version after a restart.
 * A manifest that ended in failed or rolled_back is not tried again (its signature is remembered) unless
 * the failure was a transient download problem; a stale desired document (the version not above the
 * floor) is refused once, and the running version is left alone.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import pino, { type Logger } from 'pino';
import {
  compareVersions,
  FIRMWARE_SHADOW,
  type FirmwareDesired,
  FirmwareDesiredSchema,
  type FirmwareReport,
  type FirmwareState,
  verifyManifestSignature,
} from '../../protocol/firmware.js';
import { shadowTopics } from '../../protocol/topics.js';
import { systemClock } from '../clock.js';
import type { FirmwareConfig } from '../config.js';
import type { ChannelState, Clock, IotChannel, ShadowClient, Unsubscribe } from '../ports.js';
import { describeFailure, readLink, runCommand, switchLink } from './apply.js';
import { downloadArtifact, fetchHttpGet, type HttpGet, sha256File } from './download.js';
import {
  FirmwareAgentStoppedError,
  FirmwareApplyError,
  FirmwareDownloadError,
  FirmwareError,
  FirmwareHashMismatchError,
  FirmwareRejectedError,
  FirmwareSelfTestError,
} from './errors.js';
import {
  type AgentState,
  firmwarePaths,
  type InProgress,
  loadState,
  saveState,
  syncDir,
  type UpdateStep,
} from './state.js';

/** How far in the future a manifest's issuedAt may be (clock skew between signer and gateway). */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

export interface FirmwareAgentDeps {
  config: FirmwareConfig;
  thingName: string;
  channel: IotChannel;
  /** Where reports go (`update('firmware', {state: {reported: {firmware}}})`). */
  shadows: ShadowClient;
  clock?: Clock;
  logger?: Logger;
  /** Default: the platform's fetch. */
  httpGet?: HttpGet;
}

type ReportListener = (report: FirmwareReport) => void;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export class FirmwareAgent {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly get: HttpGet;
  private readonly paths: ReturnType<typeof firmwarePaths>;
  private readonly topics: ReturnType<typeof shadowTopics>;
  private readonly stopCtrl = new AbortController();
  private readonly listeners = new Set<ReportListener>();
  private readonly subs: Unsubscribe[] = [];
  private offState: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private pending: unknown;
  private hasPending = false;
  private reportChain: Promise<void> = Promise.resolve();
  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly deps: FirmwareAgentDeps,
    private readonly keys: ReadonlyMap<string, KeyObject>,
    private state: AgentState,
  ) {
    this.log = (deps.logger ?? pino({ level: 'silent' })).child({ component: 'firmware' });
    this.clock = deps.clock ?? systemClock;
    this.get = deps.httpGet ?? fetchHttpGet;
    this.paths = firmwarePaths(deps.config.dir);
    this.topics = shadowTopics(deps.thingName, FIRMWARE_SHADOW);
  }

  /**
   * Loads the trusted keys and the state (creating it on first start), subscribes to the firmware
   * shadow, and resumes (or rolls back) an update a previous run left unfinished.
   */
  static async start(deps: FirmwareAgentDeps): Promise<FirmwareAgent> {
    const c = deps.config;
    const keys = new Map<string, KeyObject>();
    for (const [id, k] of Object.entries(c.trustedKeys)) {
      try {
        keys.set(id, createPublicKey(typeof k === 'string' ? k : readFileSync(k.file, 'utf8')));
      } catch (err) {
        throw new FirmwareError(`firmware.trustedKeys.${id}: cannot load the public key`, { cause: err });
      }
    }
    const paths = firmwarePaths(c.dir);
    await mkdir(paths.downloads, { recursive: true });
    let state = await loadState(paths.state);
    if (!state) {
      state = { floor: c.currentVersion, current: c.currentVersion };
      await saveState(paths.state, state);
    }
    if (c.apply.mode === 'link' && (await readLink(paths.current)) === undefined) {
      // The factory-installed version gets its (empty) directory, so that a rollback has a link target.
      await mkdir(paths.versionDir(state.current), { recursive: true });
      await switchLink(paths.current, `versions/${state.current}`);
    }
    const agent = new FirmwareAgent(deps, keys, state);
    await agent.init();
    return agent;
  }

  private async init(): Promise<void> {
    const ch = this.deps.channel;
    this.subs.push(await ch.subscribe(this.topics.updateDelta, (_t, p) => this.onDelta(p), 1));
    this.subs.push(await ch.subscribe(this.topics.getAccepted, (_t, p) => this.onGetAccepted(p), 1));
    this.offState = ch.onStateChange((s: ChannelState) => {
      if (s === 'connected') this.onConnected();
    });
    this.log.info(
      { current: this.state.current, floor: this.state.floor, inProgress: this.state.inProgress?.step },
      'firmware agent started',
    );
    this.kick();
    if (ch.connected) this.onConnected();
  }

  /** The persisted state (a copy). */
  get status(): AgentState {
    return structuredClone(this.state);
  }

  /** Calls `listener` with every report, in order; returns a function that removes it. */
  onReport(listener: ReportListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once no update runs and none waits. */
  async whenIdle(): Promise<void> {
    while (this.running) await this.running;
  }

  // ---------------------------------------------------------------- shadow traffic

  private onConnected(): void {
    if (this.stopCtrl.signal.aborted) return;
    const last = this.state.last;
    if (last) this.send(last);
    this.deps.channel.publish(this.topics.get, '{}', 1).catch((err: unknown) => {
      this.log.warn({ err: message(err) }, 'firmware shadow get not sent');
    });
  }

  private onDelta(payload: Buffer): void {
    let doc: unknown;
    try {
      doc = (JSON.parse(payload.toString('utf8')) as { state?: unknown }).state;
    } catch {
      doc = undefined;
    }
    this.offer(doc);
  }

  private onGetAccepted(payload: Buffer): void {
    let desired: unknown;
    try {
      desired = (JSON.parse(payload.toString('utf8')) as { state?: { desired?: unknown } }).state?.desired;
    } catch {
      this.log.warn('firmware shadow get/accepted is not JSON');
      return;
    }
    // No desired state: nothing to install.
    if (desired === undefined || desired === null) return;
    this.offer(desired);
  }

  /** Queues a desired document (only the latest waits) and starts processing if idle. */
  private offer(doc: unknown): void {
    if (this.stopCtrl.signal.aborted) return;
    const sig = FirmwareDesiredSchema.safeParse(doc).data?.manifest.signature;
    if (sig !== undefined && sig === this.state.inProgress?.manifest.signature) return;
    this.pending = doc;
    this.hasPending = true;
    this.kick();
  }

  private kick(): void {
    if (this.running || this.stopCtrl.signal.aborted) return;
    this.running = this.loop()
      .catch((err: unknown) => {
        if (!this.stopCtrl.signal.aborted) this.log.error({ err: message(err) }, 'firmware agent failed');
      })
      .finally(() => {
        this.running = undefined;
        // A document offered while the loop was returning.
        if (this.hasPending) this.kick();
      });
  }

  private async loop(): Promise<void> {
    let resumed = true;
    while (!this.stopCtrl.signal.aborted) {
      const ip = this.state.inProgress;
      if (ip) {
        await this.run(ip, resumed);
      } else if (this.hasPending) {
        const doc = this.pending;
        this.pending = undefined;
        this.hasPending = false;
        await this.consider(doc);
      } else {
        return;
      }
      resumed = false;
    }
  }

  // ---------------------------------------------------------------- checks

  private async consider(doc: unknown): Promise<void> {
    const r = FirmwareDesiredSchema.safeParse(doc);
    if (!r.success) {
      const why = r.error.issues.map((i) => `${i.path.join('.') || '(document)'}: ${i.message}`).join('; ');
      await this.finish('failed', { error: `invalid desired document: ${why}` });
      return;
    }
    const d = r.data;
    const m = d.manifest;
    if (m.version === this.state.current) {
      this.log.debug({ version: m.version }, 'desired firmware is already running');
      return;
    }
    if (m.signature === this.state.lastRefused) return;
    try {
      this.check(d);
    } catch (err) {
      this.log.warn({ version: m.version, err: message(err) }, 'firmware manifest refused');
      this.state.lastRefused = m.signature;
      await this.finish('failed', { error: message(err), targetVersion: m.version, rolloutId: d.rolloutId });
      return;
    }
    const ip: InProgress = {
      manifest: m,
      downloadUrl: d.downloadUrl,
      ...(d.rolloutId !== undefined ? { rolloutId: d.rolloutId } : {}),
      step: 'downloading',
    };
    this.state.inProgress = ip;
    this.state.lastRefused = undefined;
    this.log.info({ version: m.version, rolloutId: d.rolloutId }, 'firmware update accepted');
    await this.run(ip, false);
  }

  /** Throws FirmwareRejectedError naming the first check that fails. */
  private check(d: FirmwareDesired): void {
    const m = d.manifest;
    const c = this.deps.config;
    const key = this.keys.get(m.keyId);
    if (!key) throw new FirmwareRejectedError(`unknown key ${m.keyId}`);
    if (!verifyManifestSignature(m, key)) {
      throw new FirmwareRejectedError(`signature does not verify with key ${m.keyId}`);
    }
    if (m.target !== c.target) {
      throw new FirmwareRejectedError(`target ${m.target} does not match this gateway's ${c.target}`);
    }
    const now = this.clock.now();
    if (Date.parse(m.expiresAt) <= now) throw new FirmwareRejectedError(`manifest expired at ${m.expiresAt}`);
    if (Date.parse(m.issuedAt) > now + MAX_CLOCK_SKEW_MS) {
      throw new FirmwareRejectedError(`manifest issued in the future (${m.issuedAt})`);
    }
    if (compareVersions(m.version, this.state.floor) <= 0) {
      throw new FirmwareRejectedError(
        `version ${m.version} is not above the anti-rollback floor ${this.state.floor}`,
      );
    }
    if (m.size > c.maxSizeBytes) {
      throw new FirmwareRejectedError(`size ${m.size} exceeds the limit of ${c.maxSizeBytes} bytes`);
    }
  }

  // ---------------------------------------------------------------- the update

  /** Runs (or, after a restart, resumes) the update from its persisted step. */
  private async run(ip: InProgress, resumed: boolean): Promise<void> {
    if (resumed && (ip.step === 'applying' || ip.step === 'testing')) {
      const what = ip.step === 'applying' ? 'apply' : 'self-test';
      this.log.warn({ version: ip.manifest.version, step: ip.step }, 'restarted mid-update: rolling back');
      await this.rollback(ip, `interrupted during ${what}`);
      return;
    }
    const v = ip.manifest.version;
    try {
      if (ip.step === 'downloading') {
        await this.step(ip, 'downloading', { progress: await this.percentOnDisk(ip) });
        await this.download(ip);
        ip.step = 'verifying';
      }
      if (ip.step === 'verifying') {
        await this.step(ip, 'verifying');
        if (!(await this.verifyAndStage(ip))) return this.run({ ...ip, step: 'downloading' }, false);
        await this.step(ip, 'applying');
      }
    } catch (err) {
      if (this.stopCtrl.signal.aborted || err instanceof FirmwareAgentStoppedError) return;
      const retryable = err instanceof FirmwareDownloadError && err.retryable;
      if (!retryable) this.state.lastRefused = ip.manifest.signature;
      this.state.inProgress = undefined;
      this.log.warn({ version: v, err: message(err) }, 'firmware update failed');
      await this.finish('failed', { error: message(err), ...this.target(ip) });
      return;
    }
    try {
      await this.apply(ip);
      await this.step(ip, 'testing');
      await this.selfTest(ip);
    } catch (err) {
      if (this.stopCtrl.signal.aborted) return;
      this.log.warn({ version: v, err: message(err) }, 'firmware update failed after staging: rolling back');
      await this.rollback(ip, message(err));
      return;
    }
    await this.commit(ip);
  }

  private target(ip: InProgress) {
    return {
      targetVersion: ip.manifest.version,
      ...(ip.rolloutId !== undefined ? { rolloutId: ip.rolloutId } : {}),
    };
  }

  private async percentOnDisk(ip: InProgress): Promise<number> {
    try {
      const have = (await stat(this.paths.part(ip.manifest.version))).size;
      return Math.min(100, Math.floor((have / ip.manifest.size) * 100));
    } catch {
      return 0;
    }
  }

  private async download(ip: InProgress): Promise<void> {
    const c = this.deps.config.download;
    let lastDecile = -1;
    await downloadArtifact({
      url: ip.downloadUrl,
      part: this.paths.part(ip.manifest.version),
      size: ip.manifest.size,
      get: this.get,
      clock: this.clock,
      timeoutMs: c.timeoutMs,
      maxAttempts: c.maxAttempts,
      backoff: c.backoff,
      signal: this.stopCtrl.signal,
      onProgress: (bytes) => {
        const pct = Math.floor((bytes / ip.manifest.size) * 100);
        const decile = Math.floor(pct / 10);
        if (decile > lastDecile) {
          lastDecile = decile;
          this.emit(this.report('downloading', { progress: pct, ...this.target(ip) }));
        }
      },
      onRetry: (attempt, err) =>
        this.log.warn({ version: ip.manifest.version, attempt, err: err.message }, 'download retried'),
    });
  }

  /**
   * Verifies the downloaded (or already staged) artifact and stages it; false when there is neither
   * (the download must be done again).
   */
  private async verifyAndStage(ip: InProgress): Promise<boolean> {
    const m = ip.manifest;
    const part = this.paths.part(m.version);
    const staged = this.paths.artifact(m.version);
    const file = (await exists(part)) ? part : (await exists(staged)) ? staged : undefined;
    if (!file) return false;
    const hash = await sha256File(file);
    if (hash !== m.sha256) {
      await rm(file, { force: true });
      throw new FirmwareHashMismatchError(`hash mismatch: expected ${m.sha256}, got ${hash}`);
    }
    if (file === part) {
      await mkdir(this.paths.versionDir(m.version), { recursive: true });
      await rename(part, staged);
      await syncDir(this.paths.versionDir(m.version));
      await syncDir(this.paths.downloads);
    }
    return true;
  }

  private async apply(ip: InProgress): Promise<void> {
    const a = this.deps.config.apply;
    const v = ip.manifest.version;
    if (a.mode === 'link') {
      await switchLink(this.paths.current, `versions/${v}`);
      return;
    }
    const env = { FIRMWARE_PATH: this.paths.artifact(v), FIRMWARE_VERSION: v, FIRMWARE_ROLLBACK: '0' };
    const r = await runCommand(a.command, env, a.timeoutMs, this.stopCtrl.signal);
    if (r.code !== 0 || r.timedOut) {
      throw new FirmwareApplyError(`apply failed: ${describeFailure(r, a.timeoutMs)}`);
    }
  }

  private async selfTest(ip: InProgress): Promise<void> {
    const t = this.deps.config.selfTest;
    if (!t) return;
    const v = ip.manifest.version;
    const env = {
      FIRMWARE_PATH: this.paths.artifact(v),
      FIRMWARE_VERSION: v,
      FIRMWARE_CURRENT: this.paths.current,
    };
    const r = await runCommand(t.command, env, t.timeoutMs, this.stopCtrl.signal);
    if (r.code !== 0 || r.timedOut) {
      throw new FirmwareSelfTestError(`self-test failed: ${describeFailure(r, t.timeoutMs)}`);
    }
  }

  /**
   * Back to the running (last committed) version: the link points at it again, or the apply command
   * runs for it (FIRMWARE_ROLLBACK=1; FIRMWARE_PATH is empty for the factory-installed version). The
   * failed version's staged files are removed and its manifest is not tried again.
   */
  private async rollback(ip: InProgress, error: string): Promise<void> {
    const a = this.deps.config.apply;
    const prev = this.state.current;
    let rollbackError: string | undefined;
    try {
      if (a.mode === 'link') {
        await mkdir(this.paths.versionDir(prev), { recursive: true });
        await switchLink(this.paths.current, `versions/${prev}`);
      } else {
        const artifact = this.paths.artifact(prev);
        const env = {
          FIRMWARE_PATH: (await exists(artifact)) ? artifact : '',
          FIRMWARE_VERSION: prev,
          FIRMWARE_ROLLBACK: '1',
        };
        const r = await runCommand(a.command, env, a.timeoutMs, this.stopCtrl.signal);
        if (r.code !== 0 || r.timedOut) rollbackError = describeFailure(r, a.timeoutMs);
      }
    } catch (err) {
      if (this.stopCtrl.signal.aborted) return;
      rollbackError = message(err);
    }
    const v = ip.manifest.version;
    if (v !== this.state.current && v !== this.state.previous) {
      await rm(this.paths.versionDir(v), { recursive: true, force: true });
    }
    this.state.inProgress = undefined;
    this.state.lastRefused = ip.manifest.signature;
    if (rollbackError !== undefined) {
      // Nothing more the agent can do by itself: reported as failed, for an operator to look at.
      this.log.error({ version: v, err: rollbackError }, 'rollback failed');
      await this.finish('failed', {
        error: `${error}; rollback failed: ${rollbackError}`,
        ...this.target(ip),
      });
      return;
    }
    this.log.warn({ version: v, runningVersion: prev, err: error }, 'firmware update rolled back');
    await this.finish('rolled_back', { error, ...this.target(ip) });
  }

  /** The update passed its self-test: the floor rises to it, and it becomes the running version. */
  private async commit(ip: InProgress): Promise<void> {
    const v = ip.manifest.version;
    const prev = this.state.current;
    this.state.previous = prev;
    this.state.current = v;
    if (compareVersions(v, this.state.floor) > 0) this.state.floor = v;
    this.state.inProgress = undefined;
    this.state.lastRefused = undefined;
    await this.finish('succeeded', { ...this.target(ip) });
    this.log.info({ version: v, previousVersion: prev }, 'firmware update succeeded');
    // Only the running and the previous versions are kept.
    try {
      for (const name of await readdir(this.paths.versions)) {
        if (name !== v && name !== prev)
          await rm(this.paths.versionDir(name), { recursive: true, force: true });
      }
    } catch (err) {
      this.log.warn({ err: message(err) }, 'old firmware versions not removed');
    }
  }

  // ---------------------------------------------------------------- state and reports

  /** Persists the step (before its side effects) and reports it. */
  private async step(ip: InProgress, step: UpdateStep, extra: { progress?: number } = {}): Promise<void> {
    ip.step = step;
    this.state.inProgress = ip;
    const doc = this.report(step, { ...extra, ...this.target(ip) });
    this.state.last = doc;
    await saveState(this.paths.state, this.state);
    this.emit(doc);
  }

  /** Persists the state with a final report, then sends it. */
  private async finish(
    state: FirmwareState,
    extra: { error?: string; targetVersion?: string; rolloutId?: string | undefined },
  ): Promise<void> {
    const { rolloutId, ...rest } = extra;
    const doc = this.report(state, { ...rest, ...(rolloutId !== undefined ? { rolloutId } : {}) });
    this.state.last = doc;
    await saveState(this.paths.state, this.state);
    this.emit(doc);
  }

  private report(
    state: FirmwareState,
    extra: { progress?: number; error?: string; targetVersion?: string; rolloutId?: string },
  ): FirmwareReport {
    return {
      version: this.state.current,
      state,
      ...extra,
      ...(this.state.previous !== undefined ? { previousVersion: this.state.previous } : {}),
      updatedAt: new Date(this.clock.now()).toISOString(),
    };
  }

  private emit(doc: FirmwareReport): void {
    for (const l of [...this.listeners]) l(doc);
    this.send(doc);
  }

  /** Sends a report through the shadow, in order; a report that cannot be sent is sent again on connect. */
  private send(doc: FirmwareReport): void {
    this.reportChain = this.reportChain
      .then(() => this.deps.shadows.update(FIRMWARE_SHADOW, { state: { reported: { firmware: doc } } }))
      .catch((err: unknown) =>
        this.log.debug({ err: message(err), state: doc.state }, 'firmware report not sent'),
      );
  }

  /** Stops listening; an update in progress stops where it is and continues (or rolls back) on restart. */
  stop(): Promise<void> {
    this.stopped ??= this.doStop();
    return this.stopped;
  }

  private async doStop(): Promise<void> {
    this.stopCtrl.abort(new FirmwareAgentStoppedError('firmware agent stopped'));
    this.offState?.();
    await Promise.allSettled(this.subs.map((u) => u()));
    await this.running;
    await this.reportChain;
    this.log.info({ current: this.state.current }, 'firmware agent stopped');
  }
}
