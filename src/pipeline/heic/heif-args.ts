/**
 * heif-convert's arguments (pure). It has no protocols or playlists to lock down, only options:
 * `--` ends them, so neither path can be read as one, and the output suffix picks the writer
 * (PNG: lossless, so the image step that follows treats it as the original).
 */
export function buildHeifConvertArgs(inputPath: string, outputPath: string): string[] {
  if (!outputPath.endsWith('.png')) throw new Error(`heif-convert output must be a .png path, not ${outputPath}`);
  return ['--quiet', '--', inputPath, outputPath];
}
