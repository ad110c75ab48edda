/**
 * The built-in estimator plugins, in the order `--help` lists them.
 *
 * @module
 */
import type { EstimatorPlugin } from "../pipeline/plugin.ts";
import { entropyPlugin } from "./entropy.ts";
import { fisherPlugin } from "./fisher.ts";
import { labelMiPlugin } from "./label_mi.ts";
import { miPlugin } from "./mi.ts";

/** Every built-in plugin. */
export const builtinPlugins: EstimatorPlugin[] = [entropyPlugin, miPlugin, labelMiPlugin, fisherPlugin];
