// What every Store shares: its repositories as fields, set once from what the engine builds.
// An engine adds how it runs a transaction and how it closes.

import { Scope } from './scope.js';
import type { ApiTokenRepository, ArtifactReferences, AuditRepository, DeploymentRepository, DeviceRepository, EnrollmentRepository, HealthRepository, JobRepository, ModelRepository, Repositories, RoundRepository, Store } from './store.js';

export abstract class RepositoryStore implements Store {
  abstract readonly kind: Store['kind'];
  readonly tokens: ApiTokenRepository;
  readonly enrollment: EnrollmentRepository;
  readonly devices: DeviceRepository;
  readonly models: ModelRepository;
  readonly deployments: DeploymentRepository;
  readonly artifactRefs: ArtifactReferences;
  readonly health: HealthRepository;
  readonly jobs: JobRepository;
  readonly rounds: RoundRepository;
  readonly audit: AuditRepository;

  constructor(repos: Repositories) {
    ({ tokens: this.tokens, enrollment: this.enrollment, devices: this.devices, models: this.models, deployments: this.deployments, artifactRefs: this.artifactRefs, health: this.health, jobs: this.jobs, rounds: this.rounds, audit: this.audit } = repos);
  }

  abstract transaction<T>(work: (tx: Repositories) => Promise<T>): Promise<T>;

  /** The keys the work running here holds: taking one again inside it must not wait for itself. */
  readonly #held = new Scope<ReadonlySet<string>>();

  exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const held = this.#held.get();
    if (held?.has(key)) return work();
    return this.lockKey(key, () => this.#held.run(new Set([...(held ?? []), key]), work));
  }

  /** Runs `work` holding the key (the engine's lock: in this process, or across relays). */
  protected abstract lockKey<T>(key: string, work: () => Promise<T>): Promise<T>;
  abstract close(): Promise<void>;
}
