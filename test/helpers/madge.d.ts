/** madge ships no types; this covers the part of its API the architecture test uses. */
declare module 'madge' {
  interface MadgeConfig {
    baseDir?: string;
    fileExtensions?: string[];
    tsConfig?: string | object;
    detectiveOptions?: Record<string, Record<string, unknown>>;
    excludeRegExp?: (string | RegExp)[];
  }

  interface MadgeResult {
    /** Each file (relative to the base directory) with the files it imports. */
    obj(): Record<string, string[]>;
    /** Each cycle as the list of files in it. */
    circular(): string[][];
    /** Files that were imported but could not be resolved or parsed. */
    warnings(): { skipped: string[] };
  }

  function madge(path: string | string[], config?: MadgeConfig): Promise<MadgeResult>;
  export default madge;
}
