/** The address of an API request: `path?query`, empty values left out. No imports, so the build's config can use it too. */
export type Query = Record<string, string | number | undefined>;

export function address(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== "") params.set(key, String(value));
  return params.size > 0 ? `${path}?${params}` : path;
}
