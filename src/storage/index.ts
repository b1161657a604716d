import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger, StorageSettings } from '../core/index.js';
import { FsStorage } from './fs.js';
import { S3Storage } from './s3.js';
import type { ObjectStore } from './types.js';

export type { ByteRange, ObjectBody, ObjectInfo, ObjectStore, PutOptions } from './types.js';
export { DEFAULT_CONTENT_TYPE } from './types.js';
export { MAX_KEY_LENGTH, MAX_SEGMENT_LENGTH, validateKey, validatePrefix } from './keys.js';
export { MAX_LIST_KEYS } from './shared.js';
export { FsStorage } from './fs.js';
export { DEFAULT_S3_REQUEST_TIMEOUT_MS, MIN_PART_SIZE, S3_CONNECT_TIMEOUT_MS, S3Storage } from './s3.js';
export type { S3StorageOptions } from './s3.js';
/** The settings createStorage reads (the config's `storage` section). */
export type { StorageSettings };

/**
 * S3 when a bucket is configured (checked with HeadBucket, so wrong credentials or a missing bucket stop
 * start-up with E_CONFIG_INVALID rather than the first recording), else files under DATA_DIR/media.
 */
export async function createStorage(settings: StorageSettings, logger: Logger): Promise<ObjectStore> {
  const log = logger.child({ module: 'storage' });
  if (settings.s3) {
    const { bucket, endpoint, region, forcePathStyle, requestTimeoutMs } = settings.s3;
    const store = new S3Storage({ bucket, region, forcePathStyle, requestTimeoutMs, ...(endpoint ? { endpoint } : {}) });
    try {
      await store.checkBucket();
    } catch (err) {
      await store.close();
      throw err;
    }
    log.info({ bucket, endpoint: endpoint ?? 'aws', region }, 'storage: S3 bucket ready');
    return store;
  }
  const root = join(settings.dataDir, 'media');
  // Made now so a DATA_DIR we cannot write to stops start-up, not the first recording.
  await mkdir(root, { recursive: true });
  log.info({ root }, 'storage: files under DATA_DIR/media');
  return new FsStorage(root);
}
