/**
 * Entry point of the CDK app (`"app"` in cdk.json): `npx cdk synth` runs this file through tsx.
 *
 * cdk-nag v3 is a CDK policy-validation plugin (it replaced the v2 Aspect): registered on the app, it
 * runs at the end of synthesis, writes its findings into the cloud assembly's validation report, and
 * an unacknowledged error fails the synth.
 */
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { buildApp } from './stack.js';

const { app } = buildApp();
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
app.synth();
