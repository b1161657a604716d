/**
 * Media storage settings: S3 when S3_BUCKET is set, else files under `<dataDir>/media`. Declared here, once,
 * because config/ fills it and storage/ reads it, and core is the one module both may import.
 */
export interface StorageSettings {
  /** DATA_DIR; without S3, objects live under `<dataDir>/media`. */
  readonly dataDir: string;
  /** Set when S3_BUCKET is. */
  readonly s3:
    | {
        readonly bucket: string;
        readonly endpoint: string | undefined;
        readonly region: string;
        readonly forcePathStyle: boolean;
        /** S3_REQUEST_TIMEOUT_MS; absent: the store's default (10 s). */
        readonly requestTimeoutMs?: number;
      }
    | undefined;
}
