CREATE TABLE `join_answers` (
	`join_id` text PRIMARY KEY NOT NULL,
	`answer` text NOT NULL,
	`agent_name` text,
	`wireguard_key` text NOT NULL,
	`answered_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `agents` ADD `endpoint` text;