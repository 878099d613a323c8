export interface TtlConfig {
  DEFAULT_TTL_SECONDS: number;
  MAX_RETENTION_SECONDS: number;
}

/** A new media's lifetime: the one asked for, or the default, never past the retention cap. */
export function ttlFor(config: TtlConfig, requested: number | null | undefined): number {
  return Math.min(requested ?? config.DEFAULT_TTL_SECONDS, config.MAX_RETENTION_SECONDS);
}
