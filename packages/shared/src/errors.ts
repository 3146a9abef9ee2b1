// The one catalogue of Outpost errors. Callers and tests match on `code`, never on message text.
// Each entry has the HTTP status the relay or agent answers with when the error reaches a client.

export const ERRORS = {
  OUTPOST_ERR_BAD_REQUEST: { status: 400, description: 'The request is malformed.' },
  OUTPOST_ERR_UNAUTHORIZED: { status: 401, description: 'No credential, or a wrong one.' },
  OUTPOST_ERR_FORBIDDEN: { status: 403, description: 'The credential may not do this.' },
  OUTPOST_ERR_NOT_FOUND: { status: 404, description: 'No such route or resource.' },
  OUTPOST_ERR_ENROLL_TOKEN_INVALID: { status: 401, description: 'The enrollment token is unknown, used or expired.' },
  OUTPOST_ERR_DEVICE_NOT_FOUND: { status: 404, description: 'No device has this id or name.' },
  OUTPOST_ERR_AMBIGUOUS: { status: 400, description: 'The name belongs to several devices; use one of their ids.' },
  OUTPOST_ERR_DEVICE_OFFLINE: { status: 409, description: 'The device is offline, so it cannot answer (its logs stay on the device).' },
  OUTPOST_ERR_DEVICE_TIMEOUT: { status: 504, description: 'The device is online but did not answer in time (busy, cut off, or an agent too old to answer).' },
  OUTPOST_ERR_MODEL_NOT_FOUND: { status: 404, description: 'No model (or model version) has this name.' },
  OUTPOST_ERR_MODEL_INVALID: { status: 400, description: 'The file is not a model onnxruntime can load.' },
  OUTPOST_ERR_SIGNATURE_CHANGED: { status: 409, description: "The new version's inputs or outputs differ from the previous version's; push with --allow-signature-change if that is meant." },
  OUTPOST_ERR_SELF_TEST_FAILED: { status: 409, description: 'The version failed its self-test when it was pushed; deploy with --self-test off (devices skip it) or --force (devices try it), or push it with a sample.' },
  OUTPOST_ERR_NO_MATCHING_DEVICES: { status: 409, description: 'The selector matches no device; deploy with --allow-empty to wait for devices that will match.' },
  OUTPOST_ERR_MODEL_NOT_READY: { status: 503, description: 'The model is known but not serving yet.' },
  OUTPOST_ERR_DEPLOYMENT_NOT_FOUND: { status: 404, description: 'No deployment has this id.' },
  OUTPOST_ERR_ARTIFACT_NOT_FOUND: { status: 404, description: 'No artifact with this sha256 is visible to the caller.' },
  OUTPOST_ERR_PAYLOAD_TOO_LARGE: { status: 413, description: 'The upload or request body is larger than the server accepts.' },
  OUTPOST_ERR_ARTIFACT_CORRUPT: { status: 503, description: "The relay's copy of the file failed its sha256 check and is quarantined until the same file is pushed again; retry after that." },
  OUTPOST_ERR_RANGE_NOT_SATISFIABLE: { status: 416, description: 'The requested byte range is outside the file.' },
  OUTPOST_ERR_BUNDLE_INVALID: { status: 400, description: 'The job bundle is not a safe tar.gz (it would write outside its folder).' },
  OUTPOST_ERR_JOB_NOT_FOUND: { status: 404, description: 'No job has this id.' },
  OUTPOST_ERR_CONFLICT: { status: 409, description: 'The resource is not in a state that allows this: a job run that has ended, or a model version a deployment uses.' },
  OUTPOST_ERR_QUOTA_EXCEEDED: { status: 403, description: 'The caller is past one of its quotas (output files of a job run).' },
  OUTPOST_ERR_TARGET_NOT_READY: { status: 409, description: 'The target cannot train: not attached, or its agent does not accept training.' },
  OUTPOST_ERR_TENSOR_INVALID: { status: 400, description: 'An input tensor does not match the model signature.' },
  OUTPOST_ERR_INFERENCE_FAILED: { status: 500, description: 'onnxruntime failed to run the model.' },
  OUTPOST_ERR_OVERLOADED: { status: 429, description: "The model's request queue is full; retry shortly (or deploy with a larger --max-queue)." },
  OUTPOST_ERR_RATE_LIMITED: { status: 429, description: 'The caller asked too often (a device renewing its certificate over and over); retry after Retry-After.' },
  OUTPOST_ERR_BROKER_UNAVAILABLE: { status: 503, description: 'The MQTT broker did not take a change to device accounts; retry.' },
  OUTPOST_ERR_BUSY: { status: 503, description: 'The relay is at its bound of concurrent downloads (or of log requests waiting for devices); retry after Retry-After.' },
  OUTPOST_ERR_DISK_FULL: { status: 507, description: "The relay's disk is full: it refuses new work (uploads, deployments, jobs) and keeps serving reads until space returns." },
  OUTPOST_ERR_INTERNAL: { status: 500, description: 'An unexpected failure; the log has details.' },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERRORS;

const kOutpostError = Symbol.for('outpost.error');

/** An error with a stable code. `instanceof` works across duplicate installs of this package. */
export class OutpostError extends Error {
  readonly code: ErrorCode;
  readonly status: number;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OutpostError';
    this.code = code;
    this.status = ERRORS[code].status;
    Object.defineProperty(this, kOutpostError, { value: true });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kOutpostError] === true;
  }

  toJSON(): ErrorBody {
    return { error: { code: this.code, message: this.message } };
  }
}

/** The body of every error answer, on the relay and on the agent. */
export interface ErrorBody {
  error: { code: string; message: string };
}

export function isErrorBody(value: unknown): value is ErrorBody {
  const error = (value as ErrorBody | null)?.error;
  return typeof error === 'object' && error !== null && typeof error.code === 'string' && typeof error.message === 'string';
}

/** The 400 a malformed or mismatched tensor gets (KServe v2 HTTP and gRPC alike). */
export function invalidTensor(message: string): OutpostError {
  return new OutpostError('OUTPOST_ERR_TENSOR_INVALID', message);
}
