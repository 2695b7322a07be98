/**
 * The Coral SDK, as an application installs it (`npm install @coral-mesh/sdk`). The code lives
 * in sdk-proto beside the contracts it serves; the build bundles it, so an app installs this
 * package and three libraries, not Coral's wire internals.
 */
export * from "@coral-mesh/sdk-proto/sdk";
