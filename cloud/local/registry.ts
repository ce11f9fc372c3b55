/**
 * The IoT registry of the local cloud: things, certificates, CA certificates, policies and their
 * attachments, persisted in one JSON file in the data dir.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { z } from 'zod';
import { certificateId as computeCertificateId, parseCertificate } from '../../certs-tooling/x509.js';
import {
  InvalidRequestError,
  ResourceConflictError,
  ResourceNotFoundError,
  StateCorruptError,
} from './errors.js';
import { type ParsedPolicy, parsePolicy } from './policy.js';
import { readJsonFile, writeJsonFile } from './store.js';

export type CertificateStatus =
  | 'ACTIVE'
  | 'INACTIVE'
  | 'REVOKED'
  | 'PENDING_TRANSFER'
  | 'REGISTER_INACTIVE'
  | 'PENDING_ACTIVATION';

export interface ThingRecord {
  thingName: string;
  thingId: string;
  thingArn: string;
  attributes: Record<string, string>;
  thingTypeName?: string;
  version: number;
  createdAt: string;
}

export interface CertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: CertificateStatus;
  /** Id of the registered CA certificate that signed it, if any. */
  caCertificateId?: string;
  creationDate: string;
  lastModifiedDate: string;
}

export interface CaCertificateRecord {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: 'ACTIVE' | 'INACTIVE';
  autoRegistrationStatus: 'ENABLE' | 'DISABLE';
  creationDate: string;
}

export interface PolicyRecord {
  policyName: string;
  policyArn: string;
  policyDocument: string;
  defaultVersionId: string;
  creationDate: string;
}

export interface ThingGroupRecord {
  thingGroupName: string;
  thingGroupId: string;
  thingGroupArn: string;
  description?: string;
  attributes: Record<string, string>;
  parentGroupName?: string;
  version: number;
  creationDate: string;
}

/** What CreateThingGroup sets; creating a group again with the same properties returns it unchanged. */
export interface ThingGroupProperties {
  description?: string | undefined;
  attributes?: Record<string, string> | undefined;
  parentGroupName?: string | undefined;
}

interface RegistryState {
  things: Record<string, ThingRecord>;
  certificates: Record<string, CertificateRecord>;
  caCertificates: Record<string, CaCertificateRecord>;
  policies: Record<string, PolicyRecord>;
  /** thingName -> principal ARNs */
  thingPrincipals: Record<string, string[]>;
  /** target (principal ARN) -> policy names */
  policyTargets: Record<string, string[]>;
  thingGroups: Record<string, ThingGroupRecord>;
  /** thingGroupName -> thing names */
  groupThings: Record<string, string[]>;
}

const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const THING_GROUP_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
/** The limit AWS sets on the groups one thing may belong to. */
export const MAX_GROUPS_PER_THING = 10;
const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
const ATTRIBUTE_NAME = /^[a-zA-Z0-9_.,@/:#=[\]-]{1,128}$/;
const ATTRIBUTE_VALUE = /^[a-zA-Z0-9_.,@/:#=[\]-]{0,800}$/;

export const ThingNameSchema = z.string().regex(THING_NAME, 'must be 1-128 characters of a-z A-Z 0-9 : _ -');

export interface RegistryEvents {
  certificateStatusChanged: [record: CertificateRecord];
  caCertificatesChanged: [];
  policyAttachmentsChanged: [];
}

export interface RegistryContext {
  region: string;
  accountId: string;
}

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly file: string;
  private state: RegistryState;
  private readonly parsedPolicies = new Map<string, ParsedPolicy>();

  constructor(
    dataDir: string,
    readonly ctx: RegistryContext,
  ) {
    super();
    this.file = join(dataDir, 'registry.json');
    const loaded = readJsonFile<Partial<RegistryState>>(this.file);
    // Registry files written before thing groups existed lack their maps.
    this.state = {
      things: loaded?.things ?? {},
      certificates: loaded?.certificates ?? {},
      caCertificates: loaded?.caCertificates ?? {},
      policies: loaded?.policies ?? {},
      thingPrincipals: loaded?.thingPrincipals ?? {},
      policyTargets: loaded?.policyTargets ?? {},
      thingGroups: loaded?.thingGroups ?? {},
      groupThings: loaded?.groupThings ?? {},
    };
    for (const p of Object.values(this.state.policies)) {
      try {
        this.parsedPolicies.set(p.policyName, parsePolicy(p.policyName, p.policyDocument));
      } catch (err) {
        throw new StateCorruptError(`policy ${p.policyName} in ${this.file} is invalid`, { cause: err });
      }
    }
  }

  private save(): void {
    writeJsonFile(this.file, this.state);
  }

  private arn(kind: string, id: string): string {
    return `arn:aws:iot:${this.ctx.region}:${this.ctx.accountId}:${kind}/${id}`;
  }

  certificateArn(certificateId: string): string {
    return this.arn('cert', certificateId);
  }

  // ---- things ----

  createThing(thingName: string, attributes: Record<string, string> = {}): ThingRecord {
    if (!THING_NAME.test(thingName)) {
      throw new InvalidRequestError(
        `thingName '${thingName}': must be 1-128 characters of a-z A-Z 0-9 : _ -`,
      );
    }
    for (const [k, v] of Object.entries(attributes)) {
      if (!ATTRIBUTE_NAME.test(k)) throw new InvalidRequestError(`attribute name '${k}' is invalid`);
      if (!ATTRIBUTE_VALUE.test(v)) throw new InvalidRequestError(`attribute '${k}' has an invalid value`);
    }
    const existing = this.state.things[thingName];
    if (existing) {
      // CreateThing is idempotent when the request matches the existing thing.
      if (JSON.stringify(existing.attributes) === JSON.stringify(attributes)) return existing;
      throw new ResourceConflictError(`thing ${thingName} already exists with different attributes`);
    }
    const record: ThingRecord = {
      thingName,
      thingId: randomUUID(),
      thingArn: this.arn('thing', thingName),
      attributes: { ...attributes },
      version: 1,
      createdAt: new Date().toISOString(),
    };
    this.state.things[thingName] = record;
    this.save();
    return record;
  }

  describeThing(thingName: string): ThingRecord {
    const t = this.state.things[thingName];
    if (!t) throw new ResourceNotFoundError(`thing ${thingName} does not exist`);
    return t;
  }

  findThing(thingName: string): ThingRecord | undefined {
    return this.state.things[thingName];
  }

  listThings(): ThingRecord[] {
    return Object.values(this.state.things);
  }

  /** Replaces a thing's attributes (when given) and bumps its version, as UpdateThing does. */
  updateThing(thingName: string, changes: { attributes?: Record<string, string> }): ThingRecord {
    const t = this.describeThing(thingName);
    if (changes.attributes !== undefined) {
      for (const [k, v] of Object.entries(changes.attributes)) {
        if (!ATTRIBUTE_NAME.test(k)) throw new InvalidRequestError(`attribute name '${k}' is invalid`);
        if (!ATTRIBUTE_VALUE.test(v)) throw new InvalidRequestError(`attribute '${k}' has an invalid value`);
      }
      t.attributes = { ...changes.attributes };
    }
    t.version += 1;
    this.save();
    return t;
  }

  deleteThing(thingName: string): void {
    this.describeThing(thingName);
    if ((this.state.thingPrincipals[thingName] ?? []).length > 0) {
      throw new InvalidRequestError(`thing ${thingName} still has principals attached; detach them first`);
    }
    delete this.state.things[thingName];
    delete this.state.thingPrincipals[thingName];
    for (const [group, names] of Object.entries(this.state.groupThings)) {
      this.state.groupThings[group] = names.filter((n) => n !== thingName);
    }
    this.save();
  }

  // ---- thing groups ----

  createThingGroup(thingGroupName: string, props: ThingGroupProperties = {}): ThingGroupRecord {
    if (!THING_GROUP_NAME.test(thingGroupName)) {
      throw new InvalidRequestError(
        `thingGroupName '${thingGroupName}': must be 1-128 characters of a-z A-Z 0-9 : _ -`,
      );
    }
    const attributes = props.attributes ?? {};
    for (const [k, v] of Object.entries(attributes)) {
      if (!ATTRIBUTE_NAME.test(k)) throw new InvalidRequestError(`attribute name '${k}' is invalid`);
      if (!ATTRIBUTE_VALUE.test(v)) throw new InvalidRequestError(`attribute '${k}' has an invalid value`);
    }
    if (props.parentGroupName !== undefined) this.describeThingGroup(props.parentGroupName);
    const existing = this.state.thingGroups[thingGroupName];
    if (existing) {
      const same =
        existing.description === props.description &&
        existing.parentGroupName === props.parentGroupName &&
        JSON.stringify(Object.entries(existing.attributes).sort()) ===
          JSON.stringify(Object.entries(attributes).sort());
      if (same) return existing;
      throw new ResourceConflictError(
        `thing group ${thingGroupName} already exists with different properties`,
      );
    }
    const record: ThingGroupRecord = {
      thingGroupName,
      thingGroupId: randomUUID(),
      thingGroupArn: this.arn('thinggroup', thingGroupName),
      ...(props.description !== undefined ? { description: props.description } : {}),
      attributes: { ...attributes },
      ...(props.parentGroupName !== undefined ? { parentGroupName: props.parentGroupName } : {}),
      version: 1,
      creationDate: new Date().toISOString(),
    };
    this.state.thingGroups[thingGroupName] = record;
    this.state.groupThings[thingGroupName] = [];
    this.save();
    return record;
  }

  findThingGroup(thingGroupName: string): ThingGroupRecord | undefined {
    return this.state.thingGroups[thingGroupName];
  }

  describeThingGroup(thingGroupName: string): ThingGroupRecord {
    const g = this.state.thingGroups[thingGroupName];
    if (!g) throw new ResourceNotFoundError(`thing group ${thingGroupName} does not exist`);
    return g;
  }

  listThingGroups(): ThingGroupRecord[] {
    return Object.values(this.state.thingGroups);
  }

  /** The groups whose parent is `thingGroupName`. */
  childThingGroups(thingGroupName: string): ThingGroupRecord[] {
    return Object.values(this.state.thingGroups).filter((g) => g.parentGroupName === thingGroupName);
  }

  /** The group's ancestors, root first. */
  thingGroupAncestors(thingGroupName: string): ThingGroupRecord[] {
    const out: ThingGroupRecord[] = [];
    let parent = this.describeThingGroup(thingGroupName).parentGroupName;
    while (parent !== undefined) {
      const g = this.state.thingGroups[parent];
      if (!g || out.includes(g)) break;
      out.unshift(g);
      parent = g.parentGroupName;
    }
    return out;
  }

  deleteThingGroup(thingGroupName: string): void {
    this.describeThingGroup(thingGroupName);
    if (this.childThingGroups(thingGroupName).length > 0) {
      throw new InvalidRequestError(`thing group ${thingGroupName} still has child groups`);
    }
    delete this.state.thingGroups[thingGroupName];
    delete this.state.groupThings[thingGroupName];
    this.save();
  }

  addThingToThingGroup(thingGroupName: string, thingName: string): void {
    this.describeThingGroup(thingGroupName);
    this.describeThing(thingName);
    const list = this.state.groupThings[thingGroupName] ?? [];
    if (list.includes(thingName)) return;
    if (this.thingGroupsOfThing(thingName).length >= MAX_GROUPS_PER_THING) {
      throw new InvalidRequestError(
        `thing ${thingName} already belongs to ${MAX_GROUPS_PER_THING} thing groups, the most a thing can`,
      );
    }
    list.push(thingName);
    this.state.groupThings[thingGroupName] = list;
    this.save();
  }

  removeThingFromThingGroup(thingGroupName: string, thingName: string): void {
    this.describeThingGroup(thingGroupName);
    this.describeThing(thingName);
    const list = this.state.groupThings[thingGroupName] ?? [];
    this.state.groupThings[thingGroupName] = list.filter((n) => n !== thingName);
    this.save();
  }

  listThingsInThingGroup(thingGroupName: string): string[] {
    this.describeThingGroup(thingGroupName);
    return [...(this.state.groupThings[thingGroupName] ?? [])];
  }

  thingGroupsOfThing(thingName: string): string[] {
    return Object.entries(this.state.groupThings)
      .filter(([, names]) => names.includes(thingName))
      .map(([group]) => group);
  }

  // ---- CA certificates ----

  /** Registers a CA certificate (ACTIVE unless `status` says otherwise); returns the existing record if known. */
  registerCaCertificate(
    pem: string,
    opts: { autoRegistration?: boolean; status?: CaCertificateRecord['status'] } = {},
  ): CaCertificateRecord {
    const cert = parseCertificate(pem);
    const id = computeCertificateId(new Uint8Array(cert.rawData));
    const existing = this.state.caCertificates[id];
    if (existing) return existing;
    const record: CaCertificateRecord = {
      certificateId: id,
      certificateArn: this.arn('cacert', id),
      certificatePem: cert.toString('pem'),
      status: opts.status ?? 'ACTIVE',
      autoRegistrationStatus: opts.autoRegistration ? 'ENABLE' : 'DISABLE',
      creationDate: new Date().toISOString(),
    };
    this.state.caCertificates[id] = record;
    this.save();
    this.emit('caCertificatesChanged');
    return record;
  }

  listCaCertificates(): CaCertificateRecord[] {
    return Object.values(this.state.caCertificates);
  }

  findCaCertificate(certificateId: string): CaCertificateRecord | undefined {
    return this.state.caCertificates[certificateId];
  }

  describeCaCertificate(certificateId: string): CaCertificateRecord {
    const c = this.state.caCertificates[certificateId];
    if (!c) throw new ResourceNotFoundError(`CA certificate ${certificateId} does not exist`);
    return c;
  }

  updateCaCertificate(
    certificateId: string,
    changes: {
      status?: CaCertificateRecord['status'];
      autoRegistrationStatus?: CaCertificateRecord['autoRegistrationStatus'];
    },
  ): CaCertificateRecord {
    const c = this.describeCaCertificate(certificateId);
    if (changes.status !== undefined) c.status = changes.status;
    if (changes.autoRegistrationStatus !== undefined)
      c.autoRegistrationStatus = changes.autoRegistrationStatus;
    this.save();
    this.emit('caCertificatesChanged');
    return c;
  }

  deleteCaCertificate(certificateId: string): void {
    const c = this.describeCaCertificate(certificateId);
    if (c.status === 'ACTIVE') {
      throw new InvalidRequestError(
        `CA certificate ${certificateId} is ACTIVE; deactivate it before deleting`,
      );
    }
    delete this.state.caCertificates[certificateId];
    this.save();
    this.emit('caCertificatesChanged');
  }

  // ---- certificates ----

  registerCertificate(pem: string, status: CertificateStatus, caCertificateId?: string): CertificateRecord {
    const cert = parseCertificate(pem);
    const id = computeCertificateId(new Uint8Array(cert.rawData));
    if (this.state.certificates[id]) {
      throw new ResourceConflictError(`certificate ${id} is already registered`);
    }
    if (caCertificateId !== undefined && !this.state.caCertificates[caCertificateId]) {
      throw new ResourceNotFoundError(`CA certificate ${caCertificateId} is not registered`);
    }
    const now = new Date().toISOString();
    const record: CertificateRecord = {
      certificateId: id,
      certificateArn: this.certificateArn(id),
      certificatePem: cert.toString('pem'),
      status,
      ...(caCertificateId !== undefined ? { caCertificateId } : {}),
      creationDate: now,
      lastModifiedDate: now,
    };
    this.state.certificates[id] = record;
    this.save();
    return record;
  }

  listCertificates(): CertificateRecord[] {
    return Object.values(this.state.certificates);
  }

  findCertificate(certificateId: string): CertificateRecord | undefined {
    return this.state.certificates[certificateId];
  }

  describeCertificate(certificateId: string): CertificateRecord {
    const c = this.state.certificates[certificateId];
    if (!c) throw new ResourceNotFoundError(`certificate ${certificateId} does not exist`);
    return c;
  }

  updateCertificateStatus(certificateId: string, status: CertificateStatus): CertificateRecord {
    const c = this.describeCertificate(certificateId);
    if (c.status === 'REVOKED' && status !== 'REVOKED') {
      throw new InvalidRequestError(
        `certificate ${certificateId} is revoked; a revoked certificate cannot change status`,
      );
    }
    c.status = status;
    c.lastModifiedDate = new Date().toISOString();
    this.save();
    this.emit('certificateStatusChanged', c);
    return c;
  }

  deleteCertificate(certificateId: string): void {
    const c = this.describeCertificate(certificateId);
    if (c.status === 'ACTIVE') {
      throw new InvalidRequestError(`certificate ${certificateId} is ACTIVE; deactivate it before deleting`);
    }
    if (this.principalThings(c.certificateArn).length > 0) {
      throw new InvalidRequestError(`certificate ${certificateId} is still attached to a thing`);
    }
    if ((this.state.policyTargets[c.certificateArn] ?? []).length > 0) {
      throw new InvalidRequestError(`certificate ${certificateId} still has policies attached`);
    }
    delete this.state.certificates[certificateId];
    this.save();
  }

  // ---- policies ----

  createPolicy(policyName: string, document: string | object): PolicyRecord {
    if (!POLICY_NAME.test(policyName)) {
      throw new InvalidRequestError(
        `policyName '${policyName}': must be 1-128 characters of word characters and +=,.@-`,
      );
    }
    if (this.state.policies[policyName]) {
      throw new ResourceConflictError(`policy ${policyName} already exists`);
    }
    const text = typeof document === 'string' ? document : JSON.stringify(document);
    const parsed = parsePolicy(policyName, text);
    const record: PolicyRecord = {
      policyName,
      policyArn: this.arn('policy', policyName),
      policyDocument: text,
      defaultVersionId: '1',
      creationDate: new Date().toISOString(),
    };
    this.state.policies[policyName] = record;
    this.parsedPolicies.set(policyName, parsed);
    this.save();
    return record;
  }

  /** Creates the policy, or replaces its document if it exists with a different one. */
  putPolicy(policyName: string, document: object): PolicyRecord {
    const existing = this.state.policies[policyName];
    const text = JSON.stringify(document);
    if (!existing) return this.createPolicy(policyName, text);
    if (existing.policyDocument !== text) {
      const parsed = parsePolicy(policyName, text);
      existing.policyDocument = text;
      existing.defaultVersionId = String(Number(existing.defaultVersionId) + 1);
      this.parsedPolicies.set(policyName, parsed);
      this.save();
      this.emit('policyAttachmentsChanged');
    }
    return existing;
  }

  getPolicy(policyName: string): PolicyRecord {
    const p = this.state.policies[policyName];
    if (!p) throw new ResourceNotFoundError(`policy ${policyName} does not exist`);
    return p;
  }

  listPolicies(): PolicyRecord[] {
    return Object.values(this.state.policies);
  }

  /** The targets (principal ARNs) a policy is attached to. */
  policyTargets(policyName: string): string[] {
    return Object.entries(this.state.policyTargets)
      .filter(([, names]) => names.includes(policyName))
      .map(([target]) => target);
  }

  deletePolicy(policyName: string): void {
    this.getPolicy(policyName);
    for (const names of Object.values(this.state.policyTargets)) {
      if (names.includes(policyName)) {
        throw new ResourceConflictError(`policy ${policyName} is still attached to a target`);
      }
    }
    delete this.state.policies[policyName];
    this.parsedPolicies.delete(policyName);
    this.save();
  }

  attachPolicy(policyName: string, target: string): void {
    this.getPolicy(policyName);
    this.requirePrincipal(target);
    const list = this.state.policyTargets[target] ?? [];
    if (!list.includes(policyName)) {
      list.push(policyName);
      this.state.policyTargets[target] = list;
      this.save();
      this.emit('policyAttachmentsChanged');
    }
  }

  detachPolicy(policyName: string, target: string): void {
    const list = this.state.policyTargets[target] ?? [];
    this.state.policyTargets[target] = list.filter((n) => n !== policyName);
    this.save();
    this.emit('policyAttachmentsChanged');
  }

  listAttachedPolicies(target: string): PolicyRecord[] {
    return (this.state.policyTargets[target] ?? []).map((n) => this.getPolicy(n));
  }

  /** The parsed policies that apply to a principal, for evaluation. */
  effectivePolicies(principalArn: string): ParsedPolicy[] {
    return (this.state.policyTargets[principalArn] ?? [])
      .map((n) => this.parsedPolicies.get(n))
      .filter((p): p is ParsedPolicy => p !== undefined);
  }

  // ---- thing principals ----

  private requirePrincipal(principalArn: string): void {
    const m = /:cert\/([0-9a-f]{64})$/.exec(principalArn);
    if (!m || !this.state.certificates[m[1]!]) {
      throw new ResourceNotFoundError(`principal ${principalArn} does not exist`);
    }
  }

  attachThingPrincipal(thingName: string, principalArn: string): void {
    this.describeThing(thingName);
    this.requirePrincipal(principalArn);
    const list = this.state.thingPrincipals[thingName] ?? [];
    if (!list.includes(principalArn)) {
      list.push(principalArn);
      this.state.thingPrincipals[thingName] = list;
      this.save();
    }
  }

  detachThingPrincipal(thingName: string, principalArn: string): void {
    const list = this.state.thingPrincipals[thingName] ?? [];
    this.state.thingPrincipals[thingName] = list.filter((p) => p !== principalArn);
    this.save();
  }

  listThingPrincipals(thingName: string): string[] {
    this.describeThing(thingName);
    return [...(this.state.thingPrincipals[thingName] ?? [])];
  }

  principalThings(principalArn: string): string[] {
    return Object.entries(this.state.thingPrincipals)
      .filter(([, arns]) => arns.includes(principalArn))
      .map(([name]) => name);
  }

  isAttached(thingName: string, principalArn: string): boolean {
    return (this.state.thingPrincipals[thingName] ?? []).includes(principalArn);
  }
}
