CREATE TABLE `joins` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`join_id` text NOT NULL,
	`mesh_id` text NOT NULL,
	`wireguard_key` text NOT NULL,
	`sealed` text NOT NULL,
	`observed_address` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`answer` text,
	`answer_signed_at` integer,
	`answered_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `joins_join_id_unique` ON `joins` (`join_id`);--> statement-breakpoint
CREATE INDEX `joins_mesh_seq` ON `joins` (`mesh_id`,`seq`);--> statement-breakpoint
CREATE INDEX `joins_expires_at` ON `joins` (`expires_at`);--> statement-breakpoint
CREATE TABLE `meshes` (
	`mesh_id` text PRIMARY KEY NOT NULL,
	`signing_key` text NOT NULL,
	`body` text NOT NULL,
	`registration_hash` text NOT NULL,
	`signed_at` integer NOT NULL,
	`nonce` text NOT NULL,
	`signature` text NOT NULL,
	`observed_address` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `meshes_expires_at` ON `meshes` (`expires_at`);--> statement-breakpoint
CREATE TABLE `refusals` (
	`code` text PRIMARY KEY NOT NULL,
	`count` integer NOT NULL,
	`last_at` integer NOT NULL
);
