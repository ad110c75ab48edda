/**
 * The built-in estimator plugins, in the order `--help` lists them.
 *
 * @module
 */
import type { EstimatorPlugin } from "../pipeline/core/plugin.ts";
import { effectiveInfoPlugin } from "./effective_info/effective_info.ts";
import { entropyPlugin } from "./entropy/entropy.ts";
import { fisherPlugin } from "./fisher/fisher.ts";
import { labelMiPlugin } from "./label_mi/label_mi.ts";
import { miPlugin } from "./mi/mi.ts";
import { uniqueInfoPlugin } from "./unique_info/unique_info.ts";

/** Every built-in plugin. */
export const builtinPlugins: EstimatorPlugin[] = [
  entropyPlugin,
  miPlugin,
  labelMiPlugin,
  fisherPlugin,
  uniqueInfoPlugin,
  effectiveInfoPlugin,
];
